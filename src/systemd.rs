//! systemd's service protocol (`sd_notify`, through the `sd-notify` crate), for units of
//! `Type=notify`: `READY=1` once a daemon serves, `STOPPING=1` when it begins to stop, and
//! `WATCHDOG=1` at half the unit's `WatchdogSec` while the daemon's core is alive (a wedged
//! manager is then restarted by systemd). Outside systemd (no `NOTIFY_SOCKET`) nothing is
//! sent. The jobs a worker runs do not inherit these variables (see
//! `tunasync_worker::runner::SERVICE_MANAGER_ENV`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Tells systemd the daemon is ready, with a line for `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!(error = %err, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// When the unit has a watchdog, pings it at half its period while `alive()` holds, until
/// `shutdown`. A core that is not alive gets no ping (logged once), so systemd restarts
/// the service.
pub fn watchdog(alive: impl Fn() -> bool + Send + 'static, shutdown: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(10));
    debug!(?period, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut said = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if alive() {
                send(&[NotifyState::Watchdog]);
                said = false;
            } else if !said {
                warn!("the daemon's core has stopped: no watchdog ping, systemd will restart it");
                said = true;
            }
        }
    });
}
