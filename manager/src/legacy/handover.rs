//! When a worker id moves from a Go worker (HTTP) to a broker worker: the step of a
//! rolling migration where a host's Go worker is stopped and our worker starts under the
//! same id.
//!
//! The state actor ignores the broker's events for a Go worker's id, keeps the newest
//! `hello` among them, and names the id here. This task then asks the Go worker (a `ping`
//! to the URL it registered): a worker that answers in any way is still running, and keeps
//! its id (logged once); one whose URL refuses the connection is gone, and the actor
//! releases the id ([`crate::state::Mutation::ReleaseLegacy`]) and applies the kept
//! `hello`, so the broker worker is welcomed with the jobs' stored times and history.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::CmdVerb;

use super::relay::{Relay, RelayError, WorkerCmd};
use crate::once_log::OnceLog;
use crate::state::{Mutation, StateHandle};
use crate::view::View;

/// A Go worker that answered is not asked again sooner than this.
pub const PROBE_AGAIN_AFTER: Duration = Duration::from_secs(5);

/// Ids a broker worker said `hello` under while a Go worker holds them.
#[derive(Debug, Default)]
pub struct Handovers {
    waiting: Mutex<BTreeSet<WorkerId>>,
    notify: Notify,
}

impl Handovers {
    /// Names an id to look at. Never waits.
    pub fn push(&self, worker: WorkerId) {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(worker);
        self.notify.notify_one();
    }

    fn take(&self) -> BTreeSet<WorkerId> {
        std::mem::take(
            &mut *self
                .waiting
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// Looks at each id named until `shutdown`.
pub async fn run(
    handovers: Arc<Handovers>,
    relay: Relay,
    view: Arc<View>,
    state: StateHandle,
    shutdown: CancellationToken,
) {
    let mut answered: HashMap<WorkerId, Instant> = HashMap::new();
    let still_running: OnceLog<WorkerId> = OnceLog::default();
    loop {
        let waiting = handovers.take();
        if waiting.is_empty() {
            tokio::select! {
                () = handovers.notify.notified() => continue,
                () = shutdown.cancelled() => return,
            }
        }
        answered.retain(|_, at| at.elapsed() < PROBE_AGAIN_AFTER);
        for worker in waiting {
            if answered.contains_key(&worker) {
                continue;
            }
            let Some(url) = view.legacy_url(&worker) else {
                continue;
            };
            let ping = WorkerCmd {
                cmd: CmdVerb::Ping,
                mirror_id: String::new(),
                args: None,
                options: None,
            };
            let probe = tokio::select! {
                probe = relay.send(&worker, &url, &ping) => probe,
                () = shutdown.cancelled() => return,
            };
            match probe {
                Err(RelayError::Unreachable {
                    connect: true,
                    reason,
                    ..
                }) => {
                    info!(%worker, %url, %reason, "the Go worker does not answer at its URL: its id moves to the broker worker that said hello under it");
                    if let Err(err) = state.mutate(Mutation::ReleaseLegacy(worker.clone())).await {
                        warn!(%worker, error = %tunasync_shared::error_chain(&err), "cannot move the id to the broker yet");
                    }
                }
                other => {
                    answered.insert(worker.clone(), Instant::now());
                    if still_running.first(worker.clone()) {
                        warn!(%worker, %url, answer = ?other.err(), "a broker worker said hello under the id of a Go worker that still answers: ignored (logged once); stop the Go worker to move the id");
                    } else {
                        debug!(%worker, "the Go worker still answers");
                    }
                }
            }
        }
    }
}
