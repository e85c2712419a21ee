//! `[broker]` settings, shared by the manager's and the workers' config files.

use std::path::PathBuf;
use std::str::FromStr;

use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use serde::{Deserialize, Deserializer};

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "tunasync";

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `url`: one `amqps://` (or, when the URL says so, `amqp://`) URL, or a list of broker
    /// nodes tried in turn.
    #[serde(rename = "url", deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// The CA that signed the broker's certificate; the only CA trusted.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for TLS client authentication and the EXTERNAL mechanism.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (PKCS#8 PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Prefix of every exchange and queue name, so clusters (or tests) can share a broker.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// `classic` (one broker node) or `quorum` (a clustered broker).
    #[serde(default)]
    pub queue_type: QueueType,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// The kind of queue we declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

/// A `[broker]` setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`url` is empty: give at least one amqps:// URL")]
    NoUrl,
    #[error("there is no [broker] section: `tunasync standalone` runs without one")]
    NoSection,
    #[error("`url` {url:?} is not a valid AMQP URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("`ca_cert` is required for the amqps:// URL {url}: only the configured CA is trusted")]
    MissingCaCert { url: String },
    #[error("`client_cert` and `client_key` must be given together")]
    HalfClientIdentity,
    #[error(
        "the URL {url} asks for auth_mechanism=external, which needs `client_cert` and `client_key`"
    )]
    ExternalWithoutCertificate { url: String },
    #[error("`namespace` {0:?} may only hold letters, digits, '.', '_' and '-'")]
    BadNamespace(String),
}

impl BrokerConfig {
    /// A config for one URL with defaults elsewhere.
    pub fn new(url: impl Into<String>) -> Self {
        BrokerConfig {
            urls: vec![url.into()],
            ca_cert: None,
            client_cert: None,
            client_key: None,
            namespace: default_namespace(),
            queue_type: QueueType::default(),
        }
    }

    /// Checks everything that can be checked without connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.urls.is_empty() {
            return Err(ConfigError::NoUrl);
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(ConfigError::HalfClientIdentity);
        }
        if self.namespace.is_empty()
            || !self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ConfigError::BadNamespace(self.namespace.clone()));
        }
        for url in &self.urls {
            let uri = parse_url(url)?;
            if uri.scheme == AMQPScheme::AMQPS && self.ca_cert.is_none() {
                return Err(ConfigError::MissingCaCert {
                    url: redact_url(url),
                });
            }
            if uri.query.auth_mechanism == Some(SASLMechanism::External)
                && self.client_cert.is_none()
            {
                return Err(ConfigError::ExternalWithoutCertificate {
                    url: redact_url(url),
                });
            }
        }
        Ok(())
    }
}

/// Parses an AMQP URL; the error never repeats the password.
pub(crate) fn parse_url(url: &str) -> Result<AMQPUri, ConfigError> {
    AMQPUri::from_str(url).map_err(|reason| ConfigError::BadUrl {
        url: redact_url(url),
        reason,
    })
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a URL or a list of URLs")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![value.to_owned()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut urls = Vec::new();
            while let Some(url) = seq.next_element::<String>()? {
                urls.push(url);
            }
            Ok(urls)
        }
    }
    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Result<BrokerConfig, String> {
        let config: BrokerConfig = serde_json::from_value(json).map_err(|err| err.to_string())?;
        config.validate().map_err(|err| err.to_string())?;
        Ok(config)
    }

    #[test]
    fn accepts_one_url_or_a_list() {
        let one = config(
            serde_json::json!({"url": "amqps://u:p@localhost:5671/%2f", "ca_cert": "/ca.crt"}),
        )
        .unwrap();
        assert_eq!(one.urls.len(), 1);
        assert_eq!(one.namespace, "tunasync");
        assert_eq!(one.queue_type, QueueType::Classic);
        let many = config(serde_json::json!({
            "url": ["amqps://a:5671", "amqps://b:5671"], "ca_cert": "/ca.crt", "queue_type": "quorum", "namespace": "site-1"
        }))
        .unwrap();
        assert_eq!(many.urls, ["amqps://a:5671", "amqps://b:5671"]);
        assert_eq!(many.queue_type, QueueType::Quorum);
        let plain = config(serde_json::json!({"url": "amqp://localhost:5672"})).unwrap();
        assert!(plain.ca_cert.is_none());
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        let cases = [
            (serde_json::json!({"url": []}), "`url` is empty"),
            (
                serde_json::json!({"url": "amqps://localhost"}),
                "`ca_cert` is required",
            ),
            (
                serde_json::json!({"url": "http://localhost"}),
                "not a valid AMQP URL",
            ),
            (
                serde_json::json!({"url": "amqp://localhost", "client_cert": "/c.pem"}),
                "must be given together",
            ),
            (
                serde_json::json!({"url": "amqps://localhost?auth_mechanism=external", "ca_cert": "/ca"}),
                "needs `client_cert`",
            ),
            (
                serde_json::json!({"url": "amqp://localhost", "namespace": "a b"}),
                "`namespace`",
            ),
            (
                serde_json::json!({"url": "amqp://localhost", "queue_type": "stream"}),
                "unknown variant",
            ),
            (
                serde_json::json!({"url": "amqp://localhost", "bogus": 1}),
                "unknown field `bogus`",
            ),
        ];
        for (json, expected) in cases {
            let err = config(json.clone()).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("amqps://w1:secret@host:5671/%2f"),
            "amqps://w1:***@host:5671/%2f"
        );
        assert_eq!(redact_url("amqps://host:5671"), "amqps://host:5671");
        let err = parse_url("amqps://w1:secret@host:notaport")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
