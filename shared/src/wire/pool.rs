//! The bodies of the pool protocol: how a run of a pooled mirror goes from the manager to
//! exactly one member.
//!
//! 1. The manager publishes a [`PoolRun`] (kind `pool-run`) to the pool's queue
//!    `<ns>.pool.<pool>`; the envelope's `worker` field holds the pool's name (pool names
//!    and worker ids share one namespace).
//! 2. The member that takes it off the queue acks it and sends a [`Claim`] (event `claim`)
//!    with its own fingerprint of the mirror's definition.
//! 3. The manager answers that member alone with a [`Grant`] (command `grant`): granted only
//!    if the run is still the mirror's current one (its `lease`), nobody claimed it before,
//!    and the member's definition is the one scheduled. Only then does the member run it.
//! 4. The run's status events carry a [`PooledRun`]: the manager ignores any whose lease is
//!    not the current one (a member that was cut off and replaced cannot report over the
//!    run that replaced it); the last one says the run is over.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::names::{MirrorName, PoolName};

/// `pool-run`: a due run of a pooled mirror, for whichever member is free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRun {
    pub pool: PoolName,
    pub mirror: MirrorName,
    pub run_id: Uuid,
    /// Grows with every run the manager hands out for this mirror (also when it hands the
    /// same run out again after its member went offline): the fencing token.
    pub lease: u64,
    /// The definition the manager scheduled (`JobConfig::fingerprint` of the members).
    pub fingerprint: String,
    /// `start -f`: the member that takes it runs it beyond its concurrency limit.
    #[serde(default)]
    pub force: bool,
}

/// `claim`: a member took a pool run off the queue and asks to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub pool: PoolName,
    pub mirror: MirrorName,
    pub run_id: Uuid,
    pub lease: u64,
    /// The member's own fingerprint of the mirror's definition, or none if its file does
    /// not define the mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// `grant`: the manager's answer to a [`Claim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub pool: PoolName,
    pub mirror: MirrorName,
    pub run_id: Uuid,
    pub lease: u64,
    pub granted: bool,
    /// Why not, when not granted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The pool and lease of a pooled run, in its status events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledRun {
    pub pool: PoolName,
    pub lease: u64,
    /// The run's last report (its final `success` or `failed`; a `failed` of an attempt
    /// that is retried is not): the mirror is free for its next run.
    #[serde(default)]
    pub last: bool,
}
