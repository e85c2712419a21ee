//! Log setup for the daemons, with tunasync's flags.

use tracing_subscriber::EnvFilter;

/// How the daemon was asked to log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFlags {
    /// `--verbose`: info (our default is info already; kept for tunasync's command lines).
    pub verbose: bool,
    /// `--debug`: debug level, with source locations.
    pub debug: bool,
    /// `--with-systemd`: no timestamps or colours (journald adds its own).
    pub with_systemd: bool,
}

/// Installs the global subscriber. `RUST_LOG` overrides the level.
pub fn init(flags: LogFlags) {
    let level = if flags.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},lapin=warn,amq_protocol=warn,h2=warn,hyper=warn,rustls=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_file(flags.debug)
        .with_line_number(flags.debug)
        .with_target(flags.debug);
    let result = if flags.with_systemd {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
    if let Err(err) = result {
        eprintln!("logging already set up: {err}");
    }
}
