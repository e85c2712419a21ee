//! tunasync's job status and command verb enums, with their exact JSON strings.

use serde::{Deserialize, Serialize};

/// A mirror job's status, serialised as tunasync's seven lowercase strings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStatus {
    /// Never ran, or its state is unknown.
    #[default]
    None,
    /// The last attempt failed.
    Failed,
    /// The last run succeeded.
    Success,
    /// An attempt is running the provider.
    Syncing,
    /// A run started: hooks before the first attempt are running.
    PreSyncing,
    /// Stopped by an operator; not scheduled until started again.
    Paused,
    /// Disabled by an operator or removed from the worker's config.
    Disabled,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 7] = [
        SyncStatus::None,
        SyncStatus::Failed,
        SyncStatus::Success,
        SyncStatus::Syncing,
        SyncStatus::PreSyncing,
        SyncStatus::Paused,
        SyncStatus::Disabled,
    ];

    /// The JSON string of this status.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::None => "none",
            SyncStatus::Failed => "failed",
            SyncStatus::Success => "success",
            SyncStatus::Syncing => "syncing",
            SyncStatus::PreSyncing => "pre-syncing",
            SyncStatus::Paused => "paused",
            SyncStatus::Disabled => "disabled",
        }
    }

    /// Whether a run is in progress in this state.
    pub fn is_running(self) -> bool {
        matches!(self, SyncStatus::Syncing | SyncStatus::PreSyncing)
    }
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SyncStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyncStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownValue {
                kind: "status",
                value: s.to_owned(),
            })
    }
}

/// A command verb of tunasync's `POST /cmd`.
///
/// Unlike tunasync, an unknown verb is an error, never a silent `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CmdVerb {
    Start,
    Stop,
    Disable,
    Restart,
    Ping,
    Reload,
}

impl CmdVerb {
    pub const ALL: [CmdVerb; 6] = [
        CmdVerb::Start,
        CmdVerb::Stop,
        CmdVerb::Disable,
        CmdVerb::Restart,
        CmdVerb::Ping,
        CmdVerb::Reload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CmdVerb::Start => "start",
            CmdVerb::Stop => "stop",
            CmdVerb::Disable => "disable",
            CmdVerb::Restart => "restart",
            CmdVerb::Ping => "ping",
            CmdVerb::Reload => "reload",
        }
    }
}

impl std::fmt::Display for CmdVerb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CmdVerb {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CmdVerb::ALL
            .into_iter()
            .find(|verb| verb.as_str() == s)
            .ok_or_else(|| UnknownValue {
                kind: "command",
                value: s.to_owned(),
            })
    }
}

/// A string that names no known status or verb.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} value: {value}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_tunasyncs_strings() {
        let expected = [
            "none",
            "failed",
            "success",
            "syncing",
            "pre-syncing",
            "paused",
            "disabled",
        ];
        for (status, text) in SyncStatus::ALL.into_iter().zip(expected) {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{text}\"")
            );
            assert_eq!(
                serde_json::from_str::<SyncStatus>(&format!("\"{text}\"")).unwrap(),
                status
            );
            assert_eq!(text.parse::<SyncStatus>().unwrap(), status);
            assert_eq!(status.as_str(), text);
        }
        assert!(serde_json::from_str::<SyncStatus>("\"Success\"").is_err());
        assert!("bogus".parse::<SyncStatus>().is_err());
    }

    #[test]
    fn verbs_use_tunasyncs_strings_and_unknown_ones_are_errors() {
        for verb in CmdVerb::ALL {
            let json = serde_json::to_string(&verb).unwrap();
            assert_eq!(json, format!("\"{}\"", verb.as_str()));
            assert_eq!(serde_json::from_str::<CmdVerb>(&json).unwrap(), verb);
        }
        assert!(serde_json::from_str::<CmdVerb>("\"frobnicate\"").is_err());
        assert!(serde_json::from_str::<CmdVerb>("3").is_err());
    }
}
