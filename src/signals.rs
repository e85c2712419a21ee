//! Turning SIGINT / SIGTERM into one cancellation, the root of every task's shutdown.

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
