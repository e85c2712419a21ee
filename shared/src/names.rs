//! Validated worker ids, mirror names and pool names.
//!
//! Both end up in AMQP routing keys and queue names, file paths and store keys, so they are
//! checked once, at the edge, and carried as types afterwards.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest worker id or mirror name accepted.
///
/// AMQP queue names are limited to 255 bytes and ours carry a namespace prefix; 128 leaves room
/// and is far longer than any mirror name seen in the field.
pub const MAX_NAME_LEN: usize = 128;

/// Why a worker id or mirror name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} is longer than {MAX_NAME_LEN} bytes")]
    TooLong { what: &'static str, value: String },
    #[error("{what} {value:?} may only hold letters, digits, '.', '_' and '-'")]
    BadCharacter { what: &'static str, value: String },
    #[error("{what} {value:?} is not allowed")]
    Reserved { what: &'static str, value: String },
}

fn validate(what: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            what,
            value: value.chars().take(MAX_NAME_LEN).collect(),
        });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(NameError::BadCharacter {
            what,
            value: value.to_owned(),
        });
    }
    if value == "." || value == ".." {
        return Err(NameError::Reserved {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                validate($what, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        $crate::openapi::string_schema!(
            $name,
            concat!("A ", $what, ": letters, digits, '.', '_' and '-', at most 128 bytes."),
            None,
            Some("^[A-Za-z0-9._-]{1,128}$")
        );

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_name!(
    /// A worker's id (`[global] name` in worker.conf): its queue name, routing key and broker user.
    WorkerId,
    "worker id"
);
validated_name!(
    /// A mirror (job) name: `[[mirrors]] name` in worker.conf.
    MirrorName,
    "mirror name"
);
validated_name!(
    /// A pool of workers that share mirrors (`pool` in worker.conf): its queue name and
    /// routing key, and where tunasynctl's `-w` addresses a pooled mirror.
    PoolName,
    "pool name"
);

impl PoolName {
    /// The pool where a worker id is expected (`GET /workers/POOL/jobs`, `-w POOL`, the
    /// `worker` of a pooled mirror in `GET /jobs`): pool names and worker ids share one
    /// namespace and one set of rules.
    pub fn as_worker_id(&self) -> WorkerId {
        WorkerId(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_seen_in_the_field() {
        for ok in [
            "debian",
            "debian-security",
            "AdoptOpenJDK",
            "ubuntu.releases",
            "mirror_worker",
            "a",
        ] {
            assert_eq!(MirrorName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_could_escape_a_path_or_routing_key() {
        let cases = [
            ("", "mirror name is empty"),
            ("a/b", "may only hold"),
            ("a b", "may only hold"),
            ("tpl+a&b", "may only hold"),
            ("a.#", "may only hold"),
            ("..", "is not allowed"),
            (".", "is not allowed"),
            ("é", "may only hold"),
        ];
        for (bad, message) in cases {
            let err = MirrorName::new(bad).unwrap_err().to_string();
            assert!(err.contains(message), "{bad:?}: {err}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            WorkerId::new(long),
            Err(NameError::TooLong { .. })
        ));
        assert!(WorkerId::new("x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn deserialising_validates() {
        let err = serde_json::from_str::<WorkerId>("\"w 1\"").unwrap_err();
        assert!(err.to_string().contains("worker id \"w 1\""), "{err}");
        assert_eq!(
            serde_json::from_str::<WorkerId>("\"w1\"").unwrap().as_str(),
            "w1"
        );
    }
}
