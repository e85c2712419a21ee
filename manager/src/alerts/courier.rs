//! Delivery to one sink: its outbox items in order, each until the sink takes it, retried
//! with a doubling wait up to `retry_max`, at most `max_per_minute` a minute. What it
//! delivered goes back to the engine, which deletes it from the stored outbox.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::{SinkConfig, SinkKind};
use super::incidents::{Incident, Notification};
use super::payload;
use crate::metrics::AlertTelemetry;

/// The first wait after a failed delivery.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MINUTE: Duration = Duration::from_secs(60);

/// At most `max` sends in any minute.
#[derive(Debug)]
struct RateLimit {
    max: usize,
    /// The latest sends, at most `max`.
    sent: VecDeque<Instant>,
}

impl RateLimit {
    fn new(max_per_minute: u32) -> RateLimit {
        let max = usize::try_from(max_per_minute).unwrap_or(usize::MAX).max(1);
        RateLimit {
            max,
            sent: VecDeque::with_capacity(max.min(64)),
        }
    }

    /// When the next send may go, if not now.
    fn wait_until(&self, now: Instant) -> Option<Instant> {
        if self.sent.len() < self.max {
            return None;
        }
        let until = *self.sent.front()? + MINUTE;
        (until > now).then_some(until)
    }

    fn record(&mut self, now: Instant) {
        if self.sent.len() >= self.max {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }
}

/// A notification waiting for one sink, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub seq: u64,
    pub sink: String,
    pub notification: Notification,
}

pub struct Courier {
    pub sink: SinkConfig,
    pub token: Option<String>,
    pub http: reqwest::Client,
    pub items: mpsc::UnboundedReceiver<OutboxItem>,
    pub delivered: mpsc::UnboundedSender<u64>,
    /// The open incidents (Alertmanager is sent them again while they stay open).
    pub open: watch::Receiver<Arc<Vec<Incident>>>,
    pub retry_max: Duration,
    pub telemetry: AlertTelemetry,
}

impl Courier {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut pending: VecDeque<OutboxItem> = VecDeque::new();
        let mut limit = RateLimit::new(self.sink.max_per_minute);
        let mut retry = RETRY_FIRST;
        let mut failing_since: Option<Instant> = None;
        let mut refresh = tokio::time::interval(payload::ALERTMANAGER_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Ok(item) = self.items.try_recv() {
                pending.push_back(item);
            }
            let Some(item) = pending.front() else {
                tokio::select! {
                    item = self.items.recv() => match item {
                        Some(item) => pending.push_back(item),
                        None => return,
                    },
                    _ = refresh.tick(), if self.sink.kind == SinkKind::Alertmanager => {
                        self.refresh().await;
                    }
                    () = shutdown.cancelled() => return,
                }
                continue;
            };
            if let Some(until) = limit.wait_until(Instant::now()) {
                debug!(sink = %self.sink.name, "alert sink rate limit: waiting");
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            let body = payload::body(self.sink.kind, &item.notification, chrono::Utc::now());
            match self.post(&body).await {
                Ok(()) => {
                    limit.record(Instant::now());
                    self.telemetry.sent(&self.sink.name);
                    if let Some(since) = failing_since.take() {
                        info!(sink = %self.sink.name, after = ?since.elapsed(), "alert sink takes notifications again");
                    }
                    debug!(sink = %self.sink.name, incident = item.notification.incident.id, change = ?item.notification.change, "alert delivered");
                    let _ = self.delivered.send(item.seq);
                    pending.pop_front();
                    retry = RETRY_FIRST;
                }
                Err(reason) => {
                    self.telemetry.failed(&self.sink.name);
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        warn!(sink = %self.sink.name, error = %reason, pending = pending.len(), "cannot deliver an alert; retrying with a growing wait");
                    } else {
                        debug!(sink = %self.sink.name, error = %reason, "alert delivery failed again");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(retry) => {}
                        () = shutdown.cancelled() => return,
                    }
                    retry = retry.saturating_mul(2).min(self.retry_max);
                }
            }
        }
    }

    /// Alertmanager forgets a firing alert not sent again before its `endsAt`.
    async fn refresh(&self) {
        let open = self.open.borrow().clone();
        if open.is_empty() {
            return;
        }
        let body = payload::alertmanager_refresh(&open, chrono::Utc::now());
        if let Err(reason) = self.post(&body).await {
            debug!(sink = %self.sink.name, error = %reason, "cannot send open alerts to Alertmanager again");
        }
    }

    async fn post(&self, body: &Value) -> Result<(), String> {
        let mut request = self
            .http
            .post(&self.sink.url)
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|err| tunasync_shared::error_chain(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(format!("HTTP {status}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_lets_max_a_minute_through() {
        let start = Instant::now();
        let mut limit = RateLimit::new(2);
        assert_eq!(limit.wait_until(start), None);
        limit.record(start);
        limit.record(start + Duration::from_secs(10));
        assert_eq!(
            limit.wait_until(start + Duration::from_secs(20)),
            Some(start + MINUTE)
        );
        assert_eq!(
            limit.wait_until(start + MINUTE),
            None,
            "the first is a minute old"
        );
        limit.record(start + MINUTE);
        assert_eq!(
            limit.wait_until(start + MINUTE),
            Some(start + Duration::from_secs(70)),
            "the second's minute"
        );
    }
}
