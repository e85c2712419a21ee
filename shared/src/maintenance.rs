//! Maintenance as the API and tunasynctl speak of it: what a maintenance covers (the whole
//! cluster, one worker or pool, one mirror wherever it runs, or one mirror of one worker) and
//! the JSON of `GET|POST|DELETE /maintenance`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gotime::GoTime;
use crate::names::{MirrorName, NameError, WorkerId};

/// What one maintenance covers. Ordered from the widest to the narrowest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Cluster,
    /// A worker, or a pool (its pooled mirrors).
    Worker(WorkerId),
    /// A mirror on every worker that has it.
    Mirror(MirrorName),
    /// One mirror of one worker (or pool).
    Job(WorkerId, MirrorName),
}

impl Scope {
    pub fn new(worker: Option<WorkerId>, mirror: Option<MirrorName>) -> Scope {
        match (worker, mirror) {
            (None, None) => Scope::Cluster,
            (Some(worker), None) => Scope::Worker(worker),
            (None, Some(mirror)) => Scope::Mirror(mirror),
            (Some(worker), Some(mirror)) => Scope::Job(worker, mirror),
        }
    }

    pub fn worker(&self) -> Option<&WorkerId> {
        match self {
            Scope::Worker(worker) | Scope::Job(worker, _) => Some(worker),
            Scope::Cluster | Scope::Mirror(_) => None,
        }
    }

    pub fn mirror(&self) -> Option<&MirrorName> {
        match self {
            Scope::Mirror(mirror) | Scope::Job(_, mirror) => Some(mirror),
            Scope::Cluster | Scope::Worker(_) => None,
        }
    }

    /// `cluster`, `worker`, `mirror` or `job`, as `GET /maintenance` says it.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Cluster => "cluster",
            Scope::Worker(_) => "worker",
            Scope::Mirror(_) => "mirror",
            Scope::Job(..) => "job",
        }
    }

    /// Whether it covers `mirror` of `worker`.
    pub fn covers(&self, worker: &WorkerId, mirror: &MirrorName) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Worker(covered) => covered == worker,
            Scope::Mirror(covered) => covered == mirror,
            Scope::Job(covered_worker, covered_mirror) => {
                covered_worker == worker && covered_mirror == mirror
            }
        }
    }

    /// Whether it covers the whole of `worker`.
    pub fn covers_worker(&self, worker: &WorkerId) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Worker(covered) => covered == worker,
            Scope::Mirror(_) | Scope::Job(..) => false,
        }
    }

    /// The text the store keys it by: `cluster`, `worker/W`, `mirror/M`, `job/W/M` (names
    /// never hold a `/`).
    pub fn key(&self) -> String {
        match self {
            Scope::Cluster => "cluster".to_owned(),
            Scope::Worker(worker) => format!("worker/{worker}"),
            Scope::Mirror(mirror) => format!("mirror/{mirror}"),
            Scope::Job(worker, mirror) => format!("job/{worker}/{mirror}"),
        }
    }

    /// Reads [`Scope::key`] back.
    pub fn from_key(key: &str) -> Result<Scope, ScopeKeyError> {
        let bad = || ScopeKeyError::Shape(key.to_owned());
        let mut parts = key.split('/');
        let scope = match (parts.next(), parts.next(), parts.next()) {
            (Some("cluster"), None, None) => Scope::Cluster,
            (Some("worker"), Some(worker), None) => Scope::Worker(WorkerId::new(worker)?),
            (Some("mirror"), Some(mirror), None) => Scope::Mirror(MirrorName::new(mirror)?),
            (Some("job"), Some(worker), Some(mirror)) => {
                Scope::Job(WorkerId::new(worker)?, MirrorName::new(mirror)?)
            }
            _ => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(scope)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Cluster => f.write_str("the whole cluster"),
            Scope::Worker(worker) => write!(f, "worker {worker}"),
            Scope::Mirror(mirror) => write!(f, "mirror {mirror} (on every worker)"),
            Scope::Job(worker, mirror) => write!(f, "mirror {mirror} of worker {worker}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeKeyError {
    #[error("{0:?} is not a maintenance scope")]
    Shape(String),
    #[error(transparent)]
    Name(#[from] NameError),
}

/// The body of `POST /maintenance` (on) and `DELETE /maintenance` (off): no worker and no
/// mirror is the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceRequest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mirror: String,
    /// Shown with it (on only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One maintenance in `GET /maintenance` (and the answer to turning one on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceEntry {
    /// `cluster`, `worker`, `mirror` or `job`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    pub message: String,
    pub since: GoTime,
}

impl MaintenanceEntry {
    pub fn new(scope: &Scope, message: &str, since: GoTime) -> Self {
        MaintenanceEntry {
            scope: scope.kind().to_owned(),
            worker: scope.worker().map(ToString::to_string),
            mirror: scope.mirror().map(ToString::to_string),
            message: message.to_owned(),
            since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str) -> WorkerId {
        WorkerId::new(name).unwrap()
    }

    fn mirror(name: &str) -> MirrorName {
        MirrorName::new(name).unwrap()
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        let scopes = [
            Scope::Cluster,
            Scope::Worker(worker("w1")),
            Scope::Mirror(mirror("debian")),
            Scope::Job(worker("w1"), mirror("debian-security")),
        ];
        for scope in scopes {
            assert_eq!(Scope::from_key(&scope.key()).unwrap(), scope);
        }
        for bad in [
            "",
            "cluster/x",
            "worker",
            "job/w1",
            "job/w1/a/b",
            "pool/p",
            "worker/a b",
        ] {
            assert!(Scope::from_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_each_scope_covers() {
        let (w1, w2) = (worker("w1"), worker("w2"));
        let (debian, pypi) = (mirror("debian"), mirror("pypi"));
        let cases = [
            (Scope::Cluster, [true, true, true], [true, true]),
            (
                Scope::Worker(w1.clone()),
                [true, true, false],
                [true, false],
            ),
            (
                Scope::Mirror(debian.clone()),
                [true, false, true],
                [false, false],
            ),
            (
                Scope::Job(w1.clone(), debian.clone()),
                [true, false, false],
                [false, false],
            ),
        ];
        for (scope, jobs, workers) in cases {
            let seen = [
                scope.covers(&w1, &debian),
                scope.covers(&w1, &pypi),
                scope.covers(&w2, &debian),
            ];
            assert_eq!(seen, jobs, "{scope}");
            assert_eq!(
                [scope.covers_worker(&w1), scope.covers_worker(&w2)],
                workers,
                "{scope}"
            );
        }
        assert_eq!(
            Scope::new(Some(w1.clone()), None),
            Scope::Worker(w1.clone())
        );
        assert_eq!(Scope::new(None, None), Scope::Cluster);
    }
}
