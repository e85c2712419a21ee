//! What each kind of sink is sent for a notification (pure).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::config::SinkKind;
use super::incidents::{Change, Incident, Notification, Rule};

/// How long Alertmanager keeps a firing alert that is not sent again: the courier sends
/// open incidents again every [`ALERTMANAGER_REFRESH`].
pub const ALERTMANAGER_VALIDITY: Duration = Duration::from_secs(300);
pub const ALERTMANAGER_REFRESH: Duration = Duration::from_secs(60);

/// The body of one notification for `kind`.
pub fn body(kind: SinkKind, notification: &Notification, now: DateTime<Utc>) -> Value {
    match kind {
        SinkKind::Webhook => webhook(notification),
        SinkKind::Chat => json!({ "text": chat_text(notification) }),
        SinkKind::Alertmanager => Value::Array(vec![alertmanager(
            &notification.incident,
            notification.resolved_at,
            now,
        )]),
    }
}

/// Alertmanager's body for open incidents sent again.
pub fn alertmanager_refresh(open: &[Incident], now: DateTime<Utc>) -> Value {
    Value::Array(
        open.iter()
            .map(|incident| alertmanager(incident, None, now))
            .collect(),
    )
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn webhook(notification: &Notification) -> Value {
    let incident = &notification.incident;
    json!({
        "status": notification.change,
        "incident": incident.id,
        "rule": incident.key.rule,
        "worker": incident.key.worker.as_str(),
        "mirror": incident.key.mirror.as_ref().map(|mirror| mirror.as_str()),
        "summary": incident.summary,
        "since": time(incident.since),
        "resolved_at": notification.resolved_at.map(time),
    })
}

fn chat_text(notification: &Notification) -> String {
    let incident = &notification.incident;
    match (notification.change, notification.resolved_at) {
        (Change::Resolved, Some(resolved)) => {
            let lasted = (resolved - incident.since).to_std().unwrap_or_default();
            format!(
                "[RESOLVED] tunasync: {} (open for {})",
                incident.summary,
                humantime::format_duration(Duration::from_secs(lasted.as_secs()))
            )
        }
        _ => format!("[FIRING] tunasync: {}", incident.summary),
    }
}

fn alert_name(rule: Rule) -> &'static str {
    match rule {
        Rule::Failures => "TunasyncMirrorFailing",
        Rule::Stale => "TunasyncMirrorStale",
        Rule::WorkerOffline => "TunasyncWorkerOffline",
    }
}

fn alertmanager(
    incident: &Incident,
    resolved_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), alert_name(incident.key.rule).into());
    labels.insert("service".into(), "tunasync".into());
    labels.insert("rule".into(), incident.key.rule.as_str().into());
    labels.insert("worker".into(), incident.key.worker.as_str().into());
    if let Some(mirror) = &incident.key.mirror {
        labels.insert("mirror".into(), mirror.as_str().into());
    }
    let ends = resolved_at.unwrap_or_else(|| {
        now + chrono::Duration::from_std(ALERTMANAGER_VALIDITY).unwrap_or_default()
    });
    json!({
        "labels": labels,
        "annotations": {
            "summary": incident.summary,
            "incident": incident.id.to_string(),
        },
        "startsAt": time(incident.since),
        "endsAt": time(ends),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::incidents::IncidentKey;
    use tunasync_shared::names::{MirrorName, WorkerId};

    fn notification(change: Change) -> Notification {
        let since = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .to_utc();
        Notification {
            change,
            incident: Incident {
                id: 4,
                key: IncidentKey::job(
                    Rule::Failures,
                    &MirrorName::new("debian").unwrap(),
                    &WorkerId::new("w1").unwrap(),
                ),
                summary: "debian on w1: the last 3 runs failed".into(),
                since,
            },
            resolved_at: (change == Change::Resolved)
                .then(|| since + chrono::Duration::minutes(90)),
        }
    }

    #[test]
    fn the_three_shapes() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .to_utc();
        let firing = notification(Change::Firing);
        let resolved = notification(Change::Resolved);
        assert_eq!(
            body(SinkKind::Webhook, &firing, now),
            json!({
                "status": "firing", "incident": 4, "rule": "failures", "worker": "w1",
                "mirror": "debian", "summary": "debian on w1: the last 3 runs failed",
                "since": "2026-12-02T10:00:00Z", "resolved_at": null,
            })
        );
        assert_eq!(
            body(SinkKind::Chat, &resolved, now),
            json!({"text": "[RESOLVED] tunasync: debian on w1: the last 3 runs failed (open for 1h 30m)"})
        );
        let firing_am = body(SinkKind::Alertmanager, &firing, now);
        assert_eq!(firing_am[0]["labels"]["alertname"], "TunasyncMirrorFailing");
        assert_eq!(firing_am[0]["labels"]["mirror"], "debian");
        assert_eq!(firing_am[0]["startsAt"], "2026-12-02T10:00:00Z");
        assert_eq!(
            firing_am[0]["endsAt"], "2026-12-02T12:05:00Z",
            "sent again before"
        );
        let resolved_am = body(SinkKind::Alertmanager, &resolved, now);
        assert_eq!(resolved_am[0]["endsAt"], "2026-12-02T11:30:00Z");
    }
}
