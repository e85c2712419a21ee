//! `GET /mirrorz.json`: the site as a MirrorZ (v1.7) document, so it can be listed on
//! MirrorZ with no parser of its own. The site block comes from `[mirrorz]` in
//! manager.conf; the mirrors from the view, with MirrorZ's status tokens derived from the
//! same fields, in the same way, as MirrorZ's own parser of tunasync.json does.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tunasync_shared::status::SyncStatus;

use crate::api_error::ApiError;
use crate::records::JobRecord;
use crate::view::View;

/// `[mirrorz]`: the site block of the document (MirrorZ's `site` keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MirrorzSite {
    /// The site's address (required), e.g. `https://mirrors.example.edu`.
    pub url: String,
    /// Its short name (required), e.g. `EXAMPLE`.
    pub abbr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub logo: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub logo_darkmode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub homepage: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issue: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub disk: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub big: String,
}

impl MirrorzSite {
    /// The first required key that is missing, if one is.
    pub fn missing(&self) -> Option<&'static str> {
        if self.url.trim().is_empty() {
            Some("mirrorz.url")
        } else if self.abbr.trim().is_empty() {
            Some("mirrorz.abbr")
        } else {
            None
        }
    }
}

/// The MirrorZ format version emitted.
pub const VERSION: f64 = 1.7;

#[derive(Debug, Serialize)]
struct Document<'a> {
    version: f64,
    site: &'a MirrorzSite,
    info: [(); 0],
    mirrors: Vec<Mirror>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Mirror {
    cname: String,
    desc: String,
    url: String,
    status: String,
    help: String,
    upstream: String,
    size: String,
    disable: bool,
}

/// MirrorZ's status of one job: `S<end of last success>`, `Y<start>O<last success>`,
/// `F<end>O<last success>` (`O0000000001` if it never succeeded), `P<last success>`, `D`
/// for one that never ran, `U` otherwise; then `X<next run>` when one is scheduled.
/// (MirrorZ's parser shows `pre-syncing` as `U`; it is shown as syncing here.)
pub fn status_token(job: &JobRecord) -> String {
    let ts = |time: tunasync_shared::gotime::GoTime| (!time.is_zero()).then(|| time.unix());
    let last_success = ts(job.last_update);
    let mut token = match job.status {
        SyncStatus::Success | SyncStatus::Paused => {
            let letter = if job.status == SyncStatus::Success {
                "S"
            } else {
                "P"
            };
            match last_success {
                Some(at) => format!("{letter}{at}"),
                None => letter.to_owned(),
            }
        }
        SyncStatus::Syncing | SyncStatus::PreSyncing => match ts(job.last_started) {
            Some(started) => {
                let mut token = format!("Y{started}");
                if let Some(at) = last_success {
                    token.push_str(&format!("O{at}"));
                }
                token
            }
            None => "Y".to_owned(),
        },
        SyncStatus::Failed => match ts(job.last_ended) {
            Some(ended) => match last_success {
                Some(at) => format!("F{ended}O{at}"),
                None => format!("F{ended}O0000000001"),
            },
            None => "F".to_owned(),
        },
        SyncStatus::None => "D".to_owned(),
        SyncStatus::Disabled => "U".to_owned(),
    };
    if let Some(next) = ts(job.next_schedule) {
        token.push_str(&format!("X{next}"));
    }
    token
}

/// The mirrors of the document: one per name (a name on several workers shows its master
/// copy, else the one that succeeded last).
fn mirrors(jobs: &BTreeMap<crate::model::JobKey, JobRecord>) -> Vec<Mirror> {
    let mut chosen: BTreeMap<&str, &JobRecord> = BTreeMap::new();
    for ((mirror, _), job) in jobs {
        let better = |other: &JobRecord| {
            (job.is_master, job.last_update.unix()) > (other.is_master, other.last_update.unix())
        };
        chosen
            .entry(mirror.as_str())
            .and_modify(|kept| {
                if better(kept) {
                    *kept = job;
                }
            })
            .or_insert(job);
    }
    chosen
        .into_iter()
        .map(|(name, job)| Mirror {
            cname: name.to_owned(),
            desc: job.desc.clone(),
            url: if job.url.is_empty() {
                format!("/{name}")
            } else {
                job.url.clone()
            },
            status: status_token(job),
            help: String::new(),
            upstream: job.upstream.clone(),
            size: job.size.clone(),
            disable: job.status == SyncStatus::Disabled,
        })
        .collect()
}

struct Mirrorz {
    view: Arc<View>,
    site: Option<MirrorzSite>,
}

pub fn router(view: Arc<View>, site: Option<MirrorzSite>) -> Router {
    Router::new()
        .route("/mirrorz.json", get(document))
        .with_state(Arc::new(Mirrorz { view, site }))
}

#[utoipa::path(get, path = "/mirrorz.json", tag = "status",
    responses(
        (status = 200, description = "The site in MirrorZ's format (version 1.7), for MirrorZ's collectors.", body = Object),
        (status = 404, description = "manager.conf has no `[mirrorz]` section.", body = tunasync_shared::compat::ErrorBody),
    ))]
async fn document(State(mirrorz): State<Arc<Mirrorz>>) -> Result<Response, ApiError> {
    let Some(site) = &mirrorz.site else {
        return Err(ApiError::NotFound(
            "MirrorZ output is off: add a [mirrorz] section (url, abbr) to manager.conf".into(),
        ));
    };
    let mirrors = mirrorz.view.with_state(|model, _| mirrors(&model.jobs));
    Ok(axum::Json(Document {
        version: VERSION,
        site,
        info: [],
        mirrors,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::names::{MirrorName, WorkerId};

    fn at(seconds: i64) -> GoTime {
        GoTime::from_unix(seconds).unwrap()
    }

    fn job(status: SyncStatus, update: i64, started: i64, ended: i64, next: i64) -> JobRecord {
        let time = |seconds| {
            if seconds == 0 {
                GoTime::ZERO
            } else {
                at(seconds)
            }
        };
        JobRecord {
            status,
            last_update: time(update),
            last_started: time(started),
            last_ended: time(ended),
            next_schedule: time(next),
            ..JobRecord::default()
        }
    }

    /// The tokens MirrorZ's parser of tunasync.json derives from the same fields.
    #[test]
    fn status_tokens_as_mirrorz_derives_them() {
        let cases = [
            (job(SyncStatus::Success, 100, 90, 100, 200), "S100X200"),
            (job(SyncStatus::Success, 100, 90, 100, 0), "S100"),
            (job(SyncStatus::Syncing, 100, 150, 100, 0), "Y150O100"),
            (job(SyncStatus::Syncing, 0, 150, 0, 0), "Y150"),
            (
                job(SyncStatus::PreSyncing, 100, 150, 100, 300),
                "Y150O100X300",
            ),
            (job(SyncStatus::Failed, 100, 150, 160, 300), "F160O100X300"),
            (job(SyncStatus::Failed, 0, 150, 160, 0), "F160O0000000001"),
            (job(SyncStatus::Paused, 100, 90, 100, 0), "P100"),
            (job(SyncStatus::None, 0, 0, 0, 400), "DX400"),
            (job(SyncStatus::Disabled, 100, 0, 0, 0), "U"),
        ];
        for (job, token) in cases {
            assert_eq!(status_token(&job), token, "{:?}", job.status);
        }
    }

    #[test]
    fn one_mirror_per_name_with_its_url_and_desc() {
        let mut jobs = BTreeMap::new();
        let name = MirrorName::new("debian").unwrap();
        jobs.insert(
            (name.clone(), WorkerId::new("w1").unwrap()),
            JobRecord {
                is_master: false,
                ..job(SyncStatus::Success, 500, 0, 500, 0)
            },
        );
        jobs.insert(
            (name.clone(), WorkerId::new("w2").unwrap()),
            JobRecord {
                is_master: true,
                url: "https://mirrors.example.edu/debian/".into(),
                desc: "Debian GNU/Linux".into(),
                size: "1.2T".into(),
                upstream: "rsync://ftp.debian.org/debian/".into(),
                ..job(SyncStatus::Success, 400, 0, 400, 0)
            },
        );
        jobs.insert(
            (
                MirrorName::new("gone").unwrap(),
                WorkerId::new("w1").unwrap(),
            ),
            job(SyncStatus::Disabled, 0, 0, 0, 0),
        );
        let listed = mirrors(&jobs);
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed[0],
            Mirror {
                cname: "debian".into(),
                desc: "Debian GNU/Linux".into(),
                url: "https://mirrors.example.edu/debian/".into(),
                status: "S400".into(),
                help: String::new(),
                upstream: "rsync://ftp.debian.org/debian/".into(),
                size: "1.2T".into(),
                disable: false,
            },
            "the master copy"
        );
        assert_eq!((listed[1].url.as_str(), listed[1].disable), ("/gone", true));
    }
}
