//! `tunasync`: the manager and worker daemons.

use std::process::ExitCode;

use clap::Parser;
use tunasync::cli::{
    Cli, Daemon, ImportArgs, ManagerAction, ManagerArgs, StandaloneArgs, WorkerArgs,
};
use tunasync::logging;
use tunasync_manager::config::{ManagerConfig, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tunasync: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Daemon::Manager(args) => runtime.block_on(run_manager(*args)),
        Daemon::Worker(args) => runtime.block_on(run_worker(args)),
        Daemon::Standalone(args) => runtime.block_on(run_standalone(*args)),
    }
}

async fn run_standalone(args: StandaloneArgs) -> ExitCode {
    use tunasync::shared::broker::Deployment;
    use tunasync_worker::config::WorkerConfig;
    logging::init(args.log.flags());
    let overrides = Overrides {
        addr: args.addr,
        port: args.port,
        db_file: args.db_file,
        debug: args.log.debug,
        ..Overrides::default()
    };
    let manager = match ManagerConfig::load_as(
        args.manager_config.as_deref(),
        &overrides,
        Deployment::Standalone,
    ) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!(
                "tunasync standalone: {}",
                tunasync::shared::error_chain(&err)
            );
            return ExitCode::FAILURE;
        }
    };
    let worker = match WorkerConfig::load_as(&args.config, Deployment::Standalone) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    for warning in manager.warnings.iter().chain(&worker.warnings) {
        tracing::warn!("{warning}");
    }
    let manager = manager.config;
    let shutdown = tunasync::signals::shutdown_on_signals();
    let reload = tunasync::signals::reload_on_sighup();
    tunasync::signals::survive_file_size_limits();
    tunasync::memory::start_trimming();
    stop_notice(shutdown.clone());
    let ready = |addr| tunasync::systemd::ready(&format!("standalone: serving on {addr}"));
    match tunasync::standalone::run(manager, worker.config, reload, shutdown, ready).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{}", tunasync::shared::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run_manager(args: ManagerArgs) -> ExitCode {
    if let Some(ManagerAction::Import(import)) = args.action {
        return run_import(import).await;
    }
    logging::init(args.log.flags());
    let overrides = Overrides {
        addr: args.addr,
        port: args.port,
        cert: args.cert,
        key: args.key,
        db_file: args.db_file,
        db_type: args.db_type,
        debug: args.log.debug,
    };
    let loaded = match ManagerConfig::load(args.config.as_deref(), &overrides) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("tunasync manager: {}", tunasync::shared::error_chain(&err));
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if args.check {
        println!("config OK");
        return ExitCode::SUCCESS;
    }
    let shutdown = tunasync::signals::shutdown_on_signals();
    tunasync::signals::survive_file_size_limits();
    tunasync::memory::start_trimming();
    let running = match tunasync_manager::start(loaded.config, None, shutdown.clone()).await {
        Ok(running) => running,
        Err(err) => {
            tracing::error!("cannot start: {}", tunasync::shared::error_chain(&err));
            return ExitCode::FAILURE;
        }
    };
    tunasync::systemd::ready(&format!("serving on {}", running.local_addr));
    tunasync::systemd::watchdog(running.liveness(), shutdown.clone());
    stop_notice(shutdown);
    match running.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("API server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run_worker(args: WorkerArgs) -> ExitCode {
    use tunasync_worker::config::WorkerConfig;
    if args.check {
        return match WorkerConfig::load(&args.config) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    eprintln!("warning: {warning}");
                }
                println!("{}", tunasync_worker::check::render(&loaded.config));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::FAILURE
            }
        };
    }
    logging::init(args.log.flags());
    let loaded = match WorkerConfig::load(&args.config) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let shutdown = tunasync::signals::shutdown_on_signals();
    let reload = tunasync::signals::reload_on_sighup();
    tunasync::memory::start_trimming();
    let name = loaded.config.name.clone();
    tunasync::systemd::watchdog(|| true, shutdown.clone());
    stop_notice(shutdown.clone());
    let ready =
        move || tunasync::systemd::ready(&format!("worker {name}: connected to the broker"));
    match tunasync_worker::start(loaded.config, reload, shutdown, ready).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{}", tunasync::shared::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Tells systemd when a stop begins.
fn stop_notice(shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        shutdown.cancelled().await;
        tunasync::systemd::stopping();
    });
}

async fn run_import(args: ImportArgs) -> ExitCode {
    let overrides = Overrides {
        db_file: args.db_file,
        ..Overrides::default()
    };
    let loaded = match ManagerConfig::load(args.config.as_deref(), &overrides) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!(
                "tunasync manager import: {}",
                tunasync::shared::error_chain(&err)
            );
            return ExitCode::FAILURE;
        }
    };
    let config = loaded.config;
    let source = match tunasync_manager::import::fetch(&args.from, args.ca_cert.as_deref()).await {
        Ok(source) => source,
        Err(err) => {
            eprintln!(
                "tunasync manager import: {}",
                tunasync::shared::error_chain(&err)
            );
            return ExitCode::FAILURE;
        }
    };
    let db_file = config.db_file.clone();
    let runs_per_job = config.history.runs_per_job;
    let seeded = tokio::task::spawn_blocking(move || {
        tunasync_manager::import::seed(&db_file, runs_per_job, &source)
    })
    .await;
    match seeded {
        Ok(Ok(lines)) => {
            for line in &lines {
                println!("{line}");
            }
            println!(
                "{} into {}",
                tunasync_manager::import::summary(&lines),
                config.db_file.display()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => {
            eprintln!(
                "tunasync manager import: {}",
                tunasync::shared::error_chain(&err)
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("tunasync manager import: {err}");
            ExitCode::FAILURE
        }
    }
}
