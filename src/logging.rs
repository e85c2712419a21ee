//! Log setup for the daemons, with tunasync's flags.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// What is logged unless `RUST_LOG` says otherwise: our own messages at `level`, the
/// libraries' only when they are warnings.
fn default_targets(level: &str) -> String {
    format!("{level},lapin=warn,amq_protocol=warn,h2=warn,hyper=warn,rustls=warn")
}

/// Installs the global subscriber. `RUST_LOG` (`level` or `target=level`, comma-separated)
/// overrides the level.
pub fn init(flags: LogFlags) {
    let level = if flags.debug { "debug" } else { "info" };
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.is_empty());
    let filter = match from_env.as_deref().map(str::parse::<Targets>) {
        Some(Ok(targets)) => targets,
        other => {
            if let Some(Err(err)) = other {
                eprintln!(
                    "RUST_LOG ignored: {err} (expected `level` or `target=level`, comma-separated)"
                );
            }
            default_targets(level).parse().unwrap_or_default()
        }
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_file(flags.debug)
        .with_line_number(flags.debug)
        .with_target(flags.debug);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if flags.with_systemd {
        registry
            .with(layer.without_time().with_ansi(false))
            .try_init()
    } else {
        registry.with(layer).try_init()
    };
    if let Err(err) = result {
        eprintln!("logging already set up: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn default_filter_keeps_library_chatter_at_warnings() {
        let targets: Targets = default_targets("info").parse().unwrap();
        assert!(targets.would_enable("tunasync_worker::job", &Level::INFO));
        assert!(!targets.would_enable("tunasync_worker::job", &Level::DEBUG));
        assert!(!targets.would_enable("lapin::channel", &Level::INFO));
        assert!(targets.would_enable("lapin::channel", &Level::WARN));
        let debug: Targets = default_targets("debug").parse().unwrap();
        assert!(debug.would_enable("tunasync_manager::state", &Level::DEBUG));
    }
}
