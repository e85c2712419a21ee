//! `[alerts]` in manager.conf: the rules' thresholds and where notifications go.
//!
//! ```toml
//! [alerts]
//! failures = 3                 # runs in a row that ended failed (0: off)
//! stale_after = "2d"           # no success for this long (absent: off)
//! worker_offline = true        # a worker without heartbeats
//! interval = "10s"             # how often the rules are evaluated
//! retry_max = "5m"             # the longest wait between delivery attempts
//! [alerts.mirror_stale_after]  # per mirror, over stale_after
//! debian = "12h"
//! [[alerts.sinks]]
//! name = "ops"
//! kind = "chat"                # webhook | chat | alertmanager
//! url = "https://chat.example.org/hooks/abc"
//! max_per_minute = 20
//! token_file = "/etc/tunasync/ops-hook.token"   # optional: sent as a bearer token
//! ca_cert = "/etc/tunasync/ops-ca.pem"          # optional: the only CA trusted for https
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tunasync_shared::names::MirrorName;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AlertsConfig {
    /// Runs of a mirror in a row that ended failed before an incident opens; 0 turns the
    /// rule off.
    pub failures: u32,
    /// No successful sync for this long opens a stale incident (absent: off).
    #[serde(deserialize_with = "optional_duration")]
    pub stale_after: Option<Duration>,
    /// Per mirror (on every worker), instead of `stale_after`.
    #[serde(deserialize_with = "mirror_durations")]
    pub mirror_stale_after: BTreeMap<MirrorName, Duration>,
    /// A worker the manager counts offline opens an incident.
    pub worker_offline: bool,
    /// How often the rules are evaluated.
    #[serde(deserialize_with = "crate::config::duration")]
    pub interval: Duration,
    /// The longest wait between attempts to deliver to a sink that fails.
    #[serde(deserialize_with = "crate::config::duration")]
    pub retry_max: Duration,
    pub sinks: Vec<SinkConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            failures: 3,
            stale_after: None,
            mirror_stale_after: BTreeMap::new(),
            worker_offline: true,
            interval: Duration::from_secs(10),
            retry_max: Duration::from_secs(300),
            sinks: Vec::new(),
        }
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Deserialize)]
pub struct SinkConfig {
    /// Names the sink in logs, metrics and the outbox (keep it when the URL changes: what
    /// is undelivered follows the name).
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    /// At most this many notifications a minute; more wait their turn.
    #[serde(default = "default_per_minute")]
    pub max_per_minute: u32,
    /// A file holding a bearer token for the `Authorization` header.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// For an HTTPS `url`: trust only the certificates in this PEM file (a private CA)
    /// instead of the system's roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

fn default_per_minute() -> u32 {
    20
}

/// The shape of what a sink is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Our JSON: one object per notification.
    Webhook,
    /// `{"text": …}`, as Slack, Mattermost, Rocket.Chat and Matrix hook bridges take it.
    Chat,
    /// Prometheus Alertmanager's `POST /api/v2/alerts`.
    Alertmanager,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Chat => "chat",
            SinkKind::Alertmanager => "alertmanager",
        }
    }
}

impl AlertsConfig {
    /// The key that is wrong and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.interval.is_zero() {
            return Err(("alerts.interval", "must be more than zero".to_owned()));
        }
        if self.retry_max.is_zero() {
            return Err(("alerts.retry_max", "must be more than zero".to_owned()));
        }
        if self.stale_after.is_some_and(|after| after.is_zero())
            || self.mirror_stale_after.values().any(Duration::is_zero)
        {
            return Err((
                "alerts.stale_after",
                "must be more than zero (leave it out to turn the rule off)".to_owned(),
            ));
        }
        let mut names = BTreeSet::new();
        for (index, sink) in self.sinks.iter().enumerate() {
            let which = format!("sink {} ({:?})", index + 1, sink.name);
            if sink.name.trim().is_empty() {
                return Err(("alerts.sinks.name", format!("{which}: needs a name")));
            }
            if !names.insert(sink.name.as_str()) {
                return Err((
                    "alerts.sinks.name",
                    format!("{which}: another sink has this name"),
                ));
            }
            let url_ok = sink.url.parse::<axum::http::Uri>().ok().is_some_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            });
            if !url_ok {
                return Err((
                    "alerts.sinks.url",
                    format!("{which}: {:?} is not an http:// or https:// URL", sink.url),
                ));
            }
            if sink.max_per_minute == 0 {
                return Err((
                    "alerts.sinks.max_per_minute",
                    format!("{which}: must be at least 1"),
                ));
            }
        }
        Ok(())
    }

    /// The stale limit of `mirror`, if the rule applies to it.
    pub fn stale_limit(&self, mirror: &MirrorName) -> Option<Duration> {
        self.mirror_stale_after
            .get(mirror)
            .copied()
            .or(self.stale_after)
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    crate::config::duration(deserializer).map(Some)
}

fn mirror_durations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<MirrorName, Duration>, D::Error> {
    let texts = BTreeMap::<String, String>::deserialize(deserializer)?;
    texts
        .into_iter()
        .map(|(mirror, text)| {
            let name = MirrorName::new(&mirror).map_err(serde::de::Error::custom)?;
            let after = humantime::parse_duration(&text).map_err(|err| {
                serde::de::Error::custom(format!(
                    "{mirror}: invalid duration {text:?} ({err}); write e.g. \"12h\" or \"2d\""
                ))
            })?;
            Ok((name, after))
        })
        .collect()
}
