//! `tunasync`: the manager and worker daemons.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tunasync::logging::{self, LogFlags};
use tunasync_manager::config::{ManagerConfig, Overrides};

#[derive(Parser)]
#[command(
    name = "tunasync",
    version,
    about = "Mirror-sync cluster over AMQP: manager and worker daemons, or both in one process"
)]
struct Cli {
    #[command(subcommand)]
    command: Daemon,
}

#[derive(Subcommand)]
enum Daemon {
    /// Run the manager: status store, HTTPS API, command relay.
    #[command(alias = "m")]
    Manager(Box<ManagerArgs>),
    /// Run a worker: the mirror jobs of a tunasync worker.conf.
    #[command(alias = "w")]
    Worker(WorkerArgs),
    /// Run the manager and a worker in one process, without a broker (one-host sites).
    #[command(alias = "s")]
    Standalone(Box<StandaloneArgs>),
}

#[derive(Args)]
struct StandaloneArgs {
    /// The worker's config file (tunasync's worker.conf; no [broker] needed, and one is
    /// ignored).
    #[arg(short, long)]
    config: PathBuf,
    /// The manager's config file. Without one: the API on 127.0.0.1:14242 over plain
    /// HTTP, the store in /var/lib/tunasync/tunasync.redb, and state changes allowed from
    /// this host's loopback addresses.
    #[arg(long, value_name = "FILE")]
    manager_config: Option<PathBuf>,
    /// The address the API listens on (overrides [server] addr).
    #[arg(long)]
    addr: Option<String>,
    /// The port the API listens on (overrides [server] port).
    #[arg(long)]
    port: Option<u16>,
    /// The redb store file (overrides [files] db_file).
    #[arg(long)]
    db_file: Option<PathBuf>,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args)]
struct WorkerArgs {
    /// The worker's config file (tunasync's worker.conf plus a [broker] section).
    #[arg(short, long)]
    config: PathBuf,
    /// Check the config, print the resolved jobs as JSON (with the exact command lines)
    /// and exit; a bad file prints every problem and exits 1.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args)]
struct LogArgs {
    /// Log at info level (the default).
    #[arg(short, long)]
    verbose: bool,
    /// Log at debug level, with source locations.
    #[arg(long)]
    debug: bool,
    /// Log without timestamps or colours, for journald.
    #[arg(long)]
    with_systemd: bool,
}

impl LogArgs {
    fn flags(&self) -> LogFlags {
        LogFlags {
            verbose: self.verbose,
            debug: self.debug,
            with_systemd: self.with_systemd,
        }
    }
}

#[derive(Args)]
struct ManagerArgs {
    /// The manager's config file.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// The address the API listens on (overrides [server] addr).
    #[arg(long)]
    addr: Option<String>,
    /// The port the API listens on (overrides [server] port).
    #[arg(long)]
    port: Option<u16>,
    /// HTTPS certificate (with --key; overrides [server] ssl_cert).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// HTTPS key (with --cert; overrides [server] ssl_key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The redb store file (overrides [files] db_file).
    #[arg(long)]
    db_file: Option<PathBuf>,
    /// The store type: only "redb".
    #[arg(long)]
    db_type: Option<String>,
    /// Check the config file and exit.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    action: Option<ManagerAction>,
}

#[derive(Subcommand)]
enum ManagerAction {
    /// Seed the store from a running tunasync (Go) manager's public API (its jobs' last
    /// success, size, status), with this manager stopped; safe to run again.
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// The Go manager's API, e.g. http://127.0.0.1:14242.
    #[arg(long, value_name = "URL")]
    from: String,
    /// The CA to trust for an https:// URL.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// This manager's config file (for its store).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// The redb store file (overrides [files] db_file).
    #[arg(long)]
    db_file: Option<PathBuf>,
}

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
    let mut manager = manager.config;
    if args.manager_config.is_none() {
        manager.auth = tunasync::standalone::loopback_trust();
    }
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
