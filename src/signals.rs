//! Turning SIGINT / SIGTERM into one cancellation, the root of every task's shutdown; SIGHUP
//! into reload requests; SIGXFSZ into an error instead of death.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels the returned token on the first SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let (mut interrupt, mut terminate) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(err), _) | (_, Err(err)) => {
                warn!(error = %err, "cannot listen for signals; stop the process with SIGKILL");
                return;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT: shutting down"),
            _ = terminate.recv() => info!("SIGTERM: shutting down"),
        }
        cancel.cancel();
    });
    token
}

/// Ignores SIGXFSZ, so that a write past a file-size limit (`ulimit -f`, systemd's
/// `LimitFSIZE`) fails with an error the store handles (it keeps the events in the broker and
/// tries again) instead of killing the daemon, as PostgreSQL does for the same reason.
pub fn survive_file_size_limits() {
    // SAFETY: setting a signal's disposition to SIG_IGN is async-signal-safe and touches no
    // Rust state.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Sends a reload request on every SIGHUP.
pub fn reload_on_sighup() -> tokio::sync::mpsc::Receiver<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(err) => {
                warn!(error = %err, "cannot listen for SIGHUP; use `tunasynctl reload`");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            info!("SIGHUP: reloading the config");
            // A reload already pending covers this one too.
            let _ = sender.try_send(());
        }
    });
    receiver
}
