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
/// libraries' only when they are warnings. lapin's warning about a returned message dumps
/// the whole message as a list of bytes, one line of kilobytes per message: the broker
/// module logs one short line instead. rustls warns about every failed handshake (any
/// scanner on the internet would fill the log): errors only.
fn default_targets(level: &str) -> String {
    format!("{level},lapin=warn,{QUIET_RETURNS},amq_protocol=warn,h2=warn,hyper=warn,rustls=error")
}

/// `RUST_LOG` as given, with lapin's dump of returned messages kept out unless it names
/// that target itself.
fn with_returned_messages_quiet(text: &str) -> String {
    if text.contains("lapin::returned_messages") {
        text.to_owned()
    } else {
        format!("{text},{QUIET_RETURNS}")
    }
}

const QUIET_RETURNS: &str = "lapin::returned_messages=error";

/// Installs the global subscriber. `RUST_LOG` (`level` or `target=level`, comma-separated)
/// overrides the level.
pub fn init(flags: LogFlags) {
    let level = if flags.debug { "debug" } else { "info" };
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.is_empty())
        .map(|text| with_returned_messages_quiet(&text));
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
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
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
        assert!(!targets.would_enable("lapin::returned_messages", &Level::WARN));
        let from_env: Targets = with_returned_messages_quiet("info,lapin=warn")
            .parse()
            .unwrap();
        assert!(!from_env.would_enable("lapin::returned_messages", &Level::WARN));
        assert!(from_env.would_enable("lapin::channel", &Level::WARN));
        let asked: Targets = with_returned_messages_quiet("lapin::returned_messages=warn")
            .parse()
            .unwrap();
        assert!(asked.would_enable("lapin::returned_messages", &Level::WARN));
        let debug: Targets = default_targets("debug").parse().unwrap();
        assert!(debug.would_enable("tunasync_manager::state", &Level::DEBUG));
    }
}
