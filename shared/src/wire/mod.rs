//! The broker wire protocol: a versioned JSON envelope around commands and events.
//!
//! Every message is one JSON object:
//!
//! ```json
//! {"v":1,"kind":"status","id":"…uuid…","sent_at":"2026-11-26T03:49:04.3Z","worker":"w1","seq":42,"body":{…}}
//! ```
//!
//! - `v`: the schema version. A reader refuses any version it does not know, so a mixed
//!   cluster fails loudly (the message is dead-lettered) instead of misreading.
//! - `kind`: which command or event `body` holds; also the AMQP `type` property.
//! - `worker`: for events the sending worker, for commands the target worker (for a
//!   `pool-run`, the pool).
//! - `seq`: events only: the worker's sequence number, strictly increasing over the worker's
//!   whole life (restarts included, see [`SequenceSource`]), so a manager can drop duplicated,
//!   redelivered or late events.
//!
//! [`command`] holds what the manager sends, [`event`] what workers send, [`pool`] the
//! bodies of the pool protocol.

pub mod command;
pub mod event;
pub mod pool;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::names::WorkerId;

pub use command::{Command, CommandEnvelope, CommandKind};
pub use event::{Event, EventEnvelope, EventKind};

/// The envelope version this build writes and reads.
pub const WIRE_VERSION: u32 = 1;

/// The AMQP `content_type` of every message.
pub const CONTENT_TYPE: &str = "application/json";

/// Why a message could not be decoded. Never a panic: the consumer dead-letters the message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a JSON envelope")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("envelope has no {0:?} field")]
    MissingField(&'static str),
    #[error("unsupported envelope version {found} (this build reads version {WIRE_VERSION})")]
    UnsupportedVersion { found: u64 },
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    #[error("invalid {field} in envelope")]
    BadField {
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid body of a {kind:?} message")]
    BadBody {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What every envelope shares, decoded before the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub id: Uuid,
    pub sent_at: DateTime<Utc>,
    pub worker: WorkerId,
}

impl Header {
    /// A fresh header for a message from or to `worker`, stamped now.
    pub fn new(worker: WorkerId) -> Self {
        Header {
            id: Uuid::new_v4(),
            sent_at: Utc::now(),
            worker,
        }
    }
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(default)]
    v: Option<u64>,
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    sent_at: Option<&'a RawValue>,
    #[serde(default, borrow)]
    worker: Option<&'a RawValue>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    body: Option<&'a RawValue>,
}

/// A decoded envelope whose body is still raw JSON; the command and event modules finish it.
struct Opened<'a> {
    header: Header,
    kind: Cow<'a, str>,
    seq: Option<u64>,
    body: &'a RawValue,
}

fn open(bytes: &[u8]) -> Result<Opened<'_>, DecodeError> {
    let raw: RawEnvelope<'_> = serde_json::from_slice(bytes).map_err(DecodeError::NotAnEnvelope)?;
    let version = raw.v.ok_or(DecodeError::MissingField("v"))?;
    if version != u64::from(WIRE_VERSION) {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let kind = raw.kind.ok_or(DecodeError::MissingField("kind"))?;
    let header = Header {
        id: field(raw.id, "id")?,
        sent_at: field(raw.sent_at, "sent_at")?,
        worker: field(raw.worker, "worker")?,
    };
    let body = raw.body.ok_or(DecodeError::MissingField("body"))?;
    Ok(Opened {
        header,
        kind,
        seq: raw.seq,
        body,
    })
}

fn field<T: serde::de::DeserializeOwned>(
    raw: Option<&RawValue>,
    name: &'static str,
) -> Result<T, DecodeError> {
    let raw = raw.ok_or(DecodeError::MissingField(name))?;
    serde_json::from_str(raw.get()).map_err(|source| DecodeError::BadField {
        field: name,
        source,
    })
}

fn body<T: serde::de::DeserializeOwned>(
    raw: &RawValue,
    kind: &'static str,
) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|source| DecodeError::BadBody { kind, source })
}

#[derive(Serialize)]
struct OutEnvelope<'a, B: Serialize> {
    v: u32,
    kind: &'static str,
    id: Uuid,
    sent_at: DateTime<Utc>,
    worker: &'a WorkerId,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    body: &'a B,
}

fn seal<B: Serialize>(header: &Header, kind: &'static str, seq: Option<u64>, body: &B) -> Vec<u8> {
    let envelope = OutEnvelope {
        v: WIRE_VERSION,
        kind,
        id: header.id,
        sent_at: header.sent_at,
        worker: &header.worker,
        seq,
        body,
    };
    // Serialising plain data structs with string keys into a Vec cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// A worker's event sequence numbers: strictly increasing, also across restarts.
///
/// A number is the larger of "previous + 1" and the current time in microseconds since the
/// Unix epoch, so a restarted worker (whose counter starts again) still numbers its events
/// after everything it sent before, as long as its clock does not jump back.
#[derive(Debug, Default)]
pub struct SequenceSource {
    last: AtomicU64,
}

impl SequenceSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next(&self) -> u64 {
        let now = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
        let mut previous = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(previous + 1);
            match self.last.compare_exchange_weak(
                previous,
                candidate,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return candidate,
                Err(actual) => previous = actual,
            }
        }
    }

    /// Makes every later number larger than `seen` (a number the manager already holds from
    /// an earlier life of this worker, e.g. before its clock was stepped back). Returns
    /// whether the numbering had to jump.
    pub fn advance_past(&self, seen: u64) -> bool {
        self.last.fetch_max(seen, Ordering::Relaxed) < seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_strictly_increase() {
        let source = SequenceSource::new();
        let mut previous = 0;
        for _ in 0..10_000 {
            let next = source.next();
            assert!(next > previous);
            previous = next;
        }
        let now = u64::try_from(Utc::now().timestamp_micros()).unwrap();
        assert!(
            SequenceSource::new().next() >= now,
            "numbers follow the clock, so they survive a restart"
        );
    }

    #[test]
    fn numbering_can_jump_past_a_number_from_an_earlier_life() {
        let source = SequenceSource::new();
        let ahead = source.next() + 3_600_000_000;
        assert!(source.advance_past(ahead));
        assert!(source.next() > ahead);
        assert!(!source.advance_past(ahead), "already past it");
    }
}
