//! What the status page shows of each job, worked out from the view (no HTML here): the
//! filter a reader asked for, relative times ("3 hours ago"), sizes and progress as text.

use serde::Deserialize;
use tunasync_shared::compat::MirrorStatus;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::maintenance::Scope;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::JobProgress;

use crate::model::maintenance::Window;
use crate::view::Presence;

/// The page's query: `?status=failed&worker=w1&q=debian` (each optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only jobs in this status (`failed`, `success`, `syncing`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// Only this worker's (or pool's) jobs.
    #[serde(default)]
    pub worker: Option<String>,
    /// Only jobs whose name or upstream holds this text.
    #[serde(default)]
    pub q: Option<String>,
}

/// A [`Filter`] checked: a status that exists, text trimmed, empty parts dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub status: Option<SyncStatus>,
    pub worker: Option<String>,
    /// Lower-cased.
    pub search: Option<String>,
}

impl Filter {
    pub fn check(&self) -> Result<Checked, String> {
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let status = match text(&self.status) {
            None => None,
            Some(name) => Some(
                SyncStatus::ALL
                    .into_iter()
                    .find(|status| status.as_str() == name)
                    .ok_or_else(|| format!("no status is called {name:?}"))?,
            ),
        };
        Ok(Checked {
            status,
            worker: text(&self.worker),
            search: text(&self.q).map(|q| q.to_lowercase()),
        })
    }
}

impl Checked {
    pub fn is_empty(&self) -> bool {
        *self == Checked::default()
    }

    pub fn keeps(&self, job: &MirrorStatus) -> bool {
        self.status.is_none_or(|status| job.status == status)
            && self
                .worker
                .as_ref()
                .is_none_or(|worker| job.worker == *worker)
            && self.search.as_ref().is_none_or(|search| {
                job.name.to_lowercase().contains(search)
                    || job.upstream.to_lowercase().contains(search)
            })
    }
}

/// A moment as the page shows it: relative text, and the exact time for `title`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// "3 hours ago", "in 5 minutes", "never".
    pub text: String,
    /// RFC 3339 (empty for "never").
    pub exact: String,
}

impl When {
    pub fn of(time: GoTime, now: GoTime) -> When {
        if time.is_zero() {
            return When {
                text: "never".to_owned(),
                exact: String::new(),
            };
        }
        let exact = time
            .as_datetime()
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string();
        When {
            text: relative(time.unix() - now.unix()),
            exact,
        }
    }
}

/// `delta` seconds from now as words: "just now", "5 minutes ago", "in 2 hours".
pub fn relative(delta: i64) -> String {
    let ahead = delta > 0;
    let seconds = delta.unsigned_abs();
    if seconds < 45 {
        return if ahead { "in a moment" } else { "just now" }.to_owned();
    }
    let (count, unit) = match seconds {
        0..5_400 => (seconds.div_ceil(60).clamp(1, 89), "minute"),
        5_400..129_600 => ((seconds + 1_800) / 3_600, "hour"),
        129_600..3_888_000 => ((seconds + 43_200) / 86_400, "day"),
        3_888_000..47_304_000 => ((seconds + 1_296_000) / 2_592_000, "month"),
        _ => ((seconds + 15_768_000) / 31_536_000, "year"),
    };
    let plural = if count == 1 { "" } else { "s" };
    if ahead {
        format!("in {count} {unit}{plural}")
    } else {
        format!("{count} {unit}{plural} ago")
    }
}

/// A duration in seconds as "42 s", "12 min", "3 h 05 min".
pub fn duration(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7_200 => format!("{} min", seconds / 60),
        _ => format!("{} h {:02} min", seconds / 3_600, seconds / 60 % 60),
    }
}

/// How far a running job has got, in a few words.
pub fn progress_text(progress: &JobProgress) -> String {
    let mut parts = Vec::new();
    if let Some(percent) = progress.percent {
        parts.push(format!("{percent}%"));
    }
    if let Some(files) = progress.files {
        parts.push(format!(
            "{} file{}",
            thousands(files),
            if files == 1 { "" } else { "s" }
        ));
    }
    parts.push(format!("{} log lines", thousands(progress.log_lines)));
    parts.push(duration(progress.running_secs));
    if progress.attempt > 1 {
        parts.push(format!("attempt {}", progress.attempt));
    }
    parts.join(" · ")
}

/// 1234567 → "1,234,567".
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A maintenance in force, as the page's banner shows it.
#[derive(Debug, Clone)]
pub struct Notice {
    /// "worker w1", "the whole cluster", …
    pub what: String,
    pub message: String,
    pub since: When,
}

impl Notice {
    pub fn new(scope: &Scope, window: &Window, now: GoTime) -> Notice {
        Notice {
            what: scope.to_string(),
            message: window.message.clone(),
            since: When::of(window.since, now),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub worker: String,
    pub status: &'static str,
    pub running: bool,
    pub last_success: When,
    pub last_ended: When,
    pub next: When,
    pub size: String,
    pub upstream: String,
    pub error: String,
    pub presence: Presence,
    pub progress: Option<String>,
    /// In maintenance, with the operator's message.
    pub maintenance: Option<String>,
}

impl Row {
    pub fn new(job: &MirrorStatus, presence: Presence, now: GoTime) -> Row {
        Row {
            name: job.name.clone(),
            worker: job.worker.clone(),
            status: job.status.as_str(),
            running: job.status.is_running(),
            last_success: When::of(job.last_update, now),
            last_ended: When::of(job.last_ended, now),
            next: When::of(job.next_schedule, now),
            size: match job.size.as_str() {
                "" | "unknown" => "—".to_owned(),
                size => size.to_owned(),
            },
            upstream: job.upstream.clone(),
            error: job.error_msg.clone(),
            presence,
            progress: job.progress.as_ref().map(progress_text),
            maintenance: job.maintenance.clone(),
        }
    }

    /// The mirror page's address.
    pub fn link(&self) -> String {
        format!("/mirrors/{}/{}", self.worker, self.name)
    }

    /// The worker's presence in a word (and a CSS class).
    pub fn presence_text(&self) -> String {
        presence_text(self.presence)
    }

    pub fn online(&self) -> bool {
        !matches!(
            self.presence,
            Presence::Offline | Presence::Pool { online_members: 0 }
        )
    }
}

pub fn presence_text(presence: Presence) -> String {
    match presence {
        Presence::Online => "online".to_owned(),
        Presence::Offline => "offline".to_owned(),
        Presence::Pool { online_members } => format!(
            "pool, {online_members} member{} online",
            if online_members == 1 { "" } else { "s" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_words() {
        assert_eq!(relative(-10), "just now");
        assert_eq!(relative(20), "in a moment");
        assert_eq!(relative(-60), "1 minute ago");
        assert_eq!(relative(-300), "5 minutes ago");
        assert_eq!(relative(3 * 3600), "in 3 hours");
        assert_eq!(relative(-3 * 3600 - 1000), "3 hours ago");
        assert_eq!(relative(-2 * 86_400), "2 days ago");
        assert_eq!(relative(-90 * 86_400), "3 months ago");
        assert_eq!(relative(-800 * 86_400), "2 years ago");
        let now = GoTime::from_unix(1_800_000_000).unwrap();
        assert_eq!(When::of(GoTime::ZERO, now).text, "never");
        let when = When::of(GoTime::from_unix(1_800_000_000 - 7200).unwrap(), now);
        assert_eq!(when.text, "2 hours ago");
        assert!(when.exact.starts_with("2027-01-15 "), "{}", when.exact);
    }

    #[test]
    fn durations_counts_and_progress() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(720), "12 min");
        assert_eq!(duration(3 * 3600 + 5 * 60), "3 h 05 min");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let progress = JobProgress {
            mirror: tunasync_shared::names::MirrorName::new("debian").unwrap(),
            run_id: uuid::Uuid::nil(),
            attempt: 2,
            running_secs: 600,
            log_bytes: 10,
            log_lines: 1500,
            files: Some(1200),
            transferred_bytes: None,
            percent: Some(45),
        };
        assert_eq!(
            progress_text(&progress),
            "45% · 1,200 files · 1,500 log lines · 10 min · attempt 2"
        );
    }

    #[test]
    fn a_filter_keeps_what_it_names() {
        let job = |name: &str, worker: &str, status| MirrorStatus {
            name: name.to_owned(),
            worker: worker.to_owned(),
            status,
            upstream: format!("rsync://up.example.org/{name}/"),
            ..MirrorStatus::default()
        };
        let debian = job("debian", "w1", SyncStatus::Failed);
        let pypi = job("pypi", "w2", SyncStatus::Success);
        let filter = |status: &str, worker: &str, q: &str| {
            Filter {
                status: Some(status.to_owned()),
                worker: Some(worker.to_owned()),
                q: Some(q.to_owned()),
            }
            .check()
        };
        let everything = filter("", " ", "").unwrap();
        assert!(everything.is_empty());
        assert!(everything.keeps(&debian) && everything.keeps(&pypi));
        let failed = filter("failed", "", "").unwrap();
        assert!(failed.keeps(&debian) && !failed.keeps(&pypi));
        let on_w2 = filter("", "w2", "").unwrap();
        assert!(!on_w2.keeps(&debian) && on_w2.keeps(&pypi));
        let search = filter("", "", "DEB").unwrap();
        assert!(search.keeps(&debian) && !search.keeps(&pypi));
        let by_upstream = filter("", "", "up.example.org/pypi").unwrap();
        assert!(by_upstream.keeps(&pypi) && !by_upstream.keeps(&debian));
        let err = filter("broken", "", "").unwrap_err();
        assert!(err.contains("broken"), "{err}");
    }
}
