//! The manager's config file (tunasync's `manager.conf` plus our sections) and flag overrides.
//!
//! ```toml
//! debug = false
//! [server]            # tunasync's: where the API listens, and its certificate
//! addr = "127.0.0.1"
//! port = 14242
//! ssl_cert = "/etc/tunasync/pki/manager.crt"
//! ssl_key = "/etc/tunasync/pki/manager.key"
//! [files]             # tunasync's: the store
//! db_type = "redb"
//! db_file = "/var/lib/tunasync/tunasync.redb"
//! [broker]            # new: see tunasync_shared::broker::BrokerConfig
//! url = "amqps://manager:secret@mq.example.org:5671/tunasync"
//! ca_cert = "/etc/tunasync/pki/ca.crt"
//! [auth]              # new
//! tokens_file = "/etc/tunasync/tokens"
//! trusted_networks = ["127.0.0.1/32"]
//! require_client_cert = false
//! require_worker_identity = false
//! public_logs = false   # job logs readable without authentication
//! [commands]          # new
//! timeout = "5s"
//! expiry = "60s"
//! [liveness]          # new
//! offline_after = "30s"
//! [history]           # new
//! runs_per_job = 50
//! [mirrorz]           # new: GET /mirrorz.json (off without this section)
//! url = "https://mirrors.example.edu"
//! abbr = "EXAMPLE"
//! name = "Example University Mirrors"   # and logo, homepage, issue, email, group, …
//! [alerts]            # new: rules and sinks (off without it): see crate::alerts::config
//! failures = 3
//! stale_after = "2d"
//! [[alerts.sinks]]
//! name = "ops"
//! kind = "chat"
//! url = "https://chat.example.org/hooks/abc"
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tunasync_shared::broker::{BrokerConfig, Deployment};

use crate::cidr::Cidr;

pub const DEFAULT_ADDR: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 14242;
pub const DEFAULT_DB_FILE: &str = "/var/lib/tunasync/tunasync.redb";

/// The whole manager configuration, checked.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub debug: bool,
    pub server: ServerSection,
    pub db_file: PathBuf,
    /// `[broker]`: always there for [`Deployment::Cluster`], never for `Standalone`.
    pub broker: Option<BrokerConfig>,
    pub auth: AuthSection,
    pub commands: CommandsSection,
    pub liveness: LivenessSection,
    pub history: HistorySection,
    /// `[mirrorz]`: the site block of `GET /mirrorz.json` (off without it).
    pub mirrorz: Option<crate::mirrorz::MirrorzSite>,
    /// `[alerts]`: rules and sinks (off without it).
    pub alerts: Option<crate::alerts::config::AlertsConfig>,
    /// `[legacy] go_workers`: the bridge for tunasync's Go workers (off without it).
    pub legacy: Option<crate::legacy::Bridge>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSection {
    pub addr: String,
    pub port: u16,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            addr: DEFAULT_ADDR.to_owned(),
            port: DEFAULT_PORT,
            ssl_cert: None,
            ssl_key: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct FilesSection {
    db_file: Option<PathBuf>,
    db_type: Option<String>,
    /// tunasync's never-used `status_file`: accepted and ignored (with a warning).
    status_file: Option<PathBuf>,
    /// tunasync's CA for calling workers over HTTPS: there are no such calls any more.
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    /// A file with one bearer token per line (blank lines and `#` comments skipped).
    pub tokens_file: Option<PathBuf>,
    /// Peers in these networks may change state without a token (e.g. tunasync's Go
    /// tunasynctl on the manager's host).
    #[serde(deserialize_with = "cidrs")]
    pub trusted_networks: Vec<Cidr>,
    /// TLS clients must present a certificate signed by `client_ca`; such a certificate also
    /// authorises changes.
    pub require_client_cert: bool,
    /// The CA for client certificates; defaults to `[broker] ca_cert`.
    pub client_ca: Option<PathBuf>,
    /// Hardened mode: an event's AMQP `user_id` (verified by the broker) must equal the
    /// worker id it claims, or it is dead-lettered.
    pub require_worker_identity: bool,
    /// `GET /jobs/{worker}/{mirror}/log` without authentication (logs can hold what a site
    /// does not publish: off by default).
    pub public_logs: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CommandsSection {
    /// How long `POST /cmd` waits for the worker's answer.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// After this long in the worker's queue a command is dropped (dead-lettered) unread.
    #[serde(deserialize_with = "duration")]
    pub expiry: Duration,
}

impl Default for CommandsSection {
    fn default() -> Self {
        CommandsSection {
            timeout: Duration::from_secs(5),
            expiry: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LivenessSection {
    /// A worker whose last heartbeat is older than this is offline.
    #[serde(deserialize_with = "duration")]
    pub offline_after: Duration,
}

impl Default for LivenessSection {
    fn default() -> Self {
        LivenessSection {
            offline_after: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HistorySection {
    /// How many runs of each job the store keeps.
    pub runs_per_job: u32,
}

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection { runs_per_job: 50 }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    debug: bool,
    server: ServerSection,
    files: FilesSection,
    broker: Option<BrokerConfig>,
    auth: AuthSection,
    commands: CommandsSection,
    liveness: LivenessSection,
    history: HistorySection,
    mirrorz: Option<crate::mirrorz::MirrorzSite>,
    alerts: Option<crate::alerts::config::AlertsConfig>,
    legacy: crate::legacy::LegacySection,
}

/// Command-line flags that override the file (tunasync's precedence: flag > file > default).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub addr: Option<String>,
    pub port: Option<u16>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub db_file: Option<PathBuf>,
    pub db_type: Option<String>,
    pub debug: bool,
}

/// Why the config cannot be used. Always names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: `{key}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// A loaded config and what it said that we do not use.
#[derive(Debug)]
pub struct Loaded {
    pub config: ManagerConfig,
    pub warnings: Vec<String>,
}

impl ManagerConfig {
    /// Reads `path` (or nothing: all defaults) and applies `overrides`, for the manager of
    /// a cluster.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Loaded, ConfigError> {
        Self::load_as(path, overrides, Deployment::Cluster)
    }

    /// Reads `path` (or nothing: all defaults) and applies `overrides`, for `deployment`.
    pub fn load_as(
        path: Option<&Path>,
        overrides: &Overrides,
        deployment: Deployment,
    ) -> Result<Loaded, ConfigError> {
        let (text, shown) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?,
                path.to_owned(),
            ),
            None => (String::new(), PathBuf::from("<defaults>")),
        };
        Self::parse_as(&text, &shown, overrides, deployment)
    }

    /// Parses config text for a cluster's manager; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigError> {
        Self::parse_as(text, path, overrides, Deployment::Cluster)
    }

    /// Parses config text for `deployment`; `path` is only used in messages.
    pub fn parse_as(
        text: &str,
        path: &Path,
        overrides: &Overrides,
        deployment: Deployment,
    ) -> Result<Loaded, ConfigError> {
        let mut warnings = Vec::new();
        let deserializer = toml::Deserializer::parse(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let file: FileConfig = serde_ignored::deserialize(deserializer, |unknown| {
            warnings.push(format!(
                "{}: unknown key `{unknown}` ignored",
                path.display()
            ));
        })
        .map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };

        match overrides
            .db_type
            .as_deref()
            .or(file.files.db_type.as_deref())
        {
            None | Some("redb") => {}
            Some(other) => {
                return Err(invalid(
                    "files.db_type",
                    format!(
                        "unsupported db_type {other:?}: this manager stores its state in redb (leave db_type out or set \"redb\")"
                    ),
                ));
            }
        }
        if file.files.status_file.is_some() {
            warnings.push(format!(
                "{}: `files.status_file` is ignored (tunasync never wrote it either); GET /jobs serves tunasync.json",
                path.display()
            ));
        }
        if file.files.ca_cert.is_some() && !file.legacy.go_workers {
            warnings.push(format!(
                "{}: `files.ca_cert` is ignored: the manager calls workers over HTTPS only for [legacy] go_workers",
                path.display()
            ));
        }

        let mut server = file.server;
        if let Some(addr) = &overrides.addr {
            server.addr.clone_from(addr);
        }
        if let Some(port) = overrides.port {
            server.port = port;
        }
        // As tunasync: --cert and --key apply only together.
        if let (Some(cert), Some(key)) = (&overrides.cert, &overrides.key) {
            server.ssl_cert = Some(cert.clone());
            server.ssl_key = Some(key.clone());
        }
        if server.addr.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "server.addr",
                format!("{:?} is not an IP address", server.addr),
            ));
        }
        if server.ssl_cert.is_some() != server.ssl_key.is_some() {
            return Err(invalid(
                "server.ssl_cert",
                "`ssl_cert` and `ssl_key` must be given together".to_owned(),
            ));
        }

        let broker = match (deployment, file.broker) {
            (Deployment::Cluster, Some(broker)) => {
                broker
                    .validate()
                    .map_err(|err| invalid("broker", err.to_string()))?;
                Some(broker)
            }
            (Deployment::Cluster, None) => {
                return Err(invalid(
                    "broker",
                    "the [broker] section is required (url, ca_cert, …); `tunasync standalone` runs without one".to_owned(),
                ));
            }
            (Deployment::Standalone, Some(_)) => {
                warnings.push(format!(
                    "{}: [broker] is ignored in standalone mode (run `tunasync manager` and `tunasync worker` to use it)",
                    path.display()
                ));
                None
            }
            (Deployment::Standalone, None) => None,
        };

        let mut auth = file.auth;
        if deployment == Deployment::Standalone
            && auth.tokens_file.is_none()
            && auth.trusted_networks.is_empty()
            && !auth.require_client_cert
        {
            // One host, no [auth]: this host's own peers may change state (so tunasynctl
            // works out of the box, as with tunasync, which had no authentication at all).
            auth.trusted_networks = loopback_networks();
        }
        if auth.require_client_cert && server.ssl_cert.is_none() {
            return Err(invalid(
                "auth.require_client_cert",
                "client certificates need HTTPS: set server.ssl_cert and server.ssl_key".to_owned(),
            ));
        }
        let broker_ca = broker.as_ref().and_then(|broker| broker.ca_cert.as_ref());
        if auth.require_client_cert && auth.client_ca.is_none() && broker_ca.is_none() {
            return Err(invalid(
                "auth.client_ca",
                "require_client_cert needs a CA: set auth.client_ca (or broker.ca_cert)".to_owned(),
            ));
        }
        if file.commands.timeout.is_zero() {
            return Err(invalid(
                "commands.timeout",
                "must be more than zero".to_owned(),
            ));
        }
        if file.commands.expiry.is_zero() {
            return Err(invalid(
                "commands.expiry",
                "must be more than zero".to_owned(),
            ));
        }
        if file.liveness.offline_after.is_zero() {
            return Err(invalid(
                "liveness.offline_after",
                "must be more than zero".to_owned(),
            ));
        }
        if let Some(key) = file.mirrorz.as_ref().and_then(|site| site.missing()) {
            return Err(invalid(
                key,
                "[mirrorz] needs the site's `url` and `abbr`".to_owned(),
            ));
        }
        if let Some(alerts) = &file.alerts {
            alerts
                .validate()
                .map_err(|(key, message)| invalid(key, message))?;
        }
        if file.history.runs_per_job == 0 {
            return Err(invalid(
                "history.runs_per_job",
                "must be at least 1".to_owned(),
            ));
        }

        let legacy_ca = file.files.ca_cert.clone().or_else(|| broker_ca.cloned());
        let legacy = file.legacy.bridge(&auth.trusted_networks, legacy_ca);
        let db_file = overrides
            .db_file
            .clone()
            .or(file.files.db_file)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB_FILE));
        Ok(Loaded {
            config: ManagerConfig {
                debug: file.debug || overrides.debug,
                server,
                db_file,
                broker,
                auth,
                commands: file.commands,
                liveness: file.liveness,
                history: file.history,
                mirrorz: file.mirrorz,
                alerts: file.alerts,
                legacy,
            },
            warnings,
        })
    }

    /// The CA that client certificates must chain to, when they are required.
    pub fn client_ca(&self) -> Option<&Path> {
        self.auth
            .client_ca
            .as_deref()
            .or_else(|| self.broker.as_ref()?.ca_cert.as_deref())
    }
}

/// 127.0.0.0/8 and ::1.
pub fn loopback_networks() -> Vec<Cidr> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|cidr| cidr.parse().ok())
        .collect()
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({err}); write e.g. \"5s\" or \"2m\""
        ))
    })
}

/// An optional list of networks (absent: `None`).
pub(crate) fn some_cidrs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Cidr>>, D::Error> {
    cidrs(deserializer).map(Some)
}

fn cidrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Cidr>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| text.parse::<Cidr>().map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKER: &str = "[broker]\nurl = \"amqp://localhost\"\n";

    fn load(text: &str, overrides: &Overrides) -> Result<Loaded, String> {
        ManagerConfig::parse(text, Path::new("manager.conf"), overrides)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn mirrorz_needs_the_sites_url_and_abbr() {
        let ok = format!(
            "{BROKER}[mirrorz]\nurl = \"https://m.example.edu\"\nabbr = \"EX\"\nname = \"Example\"\n"
        );
        let site = load(&ok, &Overrides::default())
            .unwrap()
            .config
            .mirrorz
            .unwrap();
        assert_eq!((site.abbr.as_str(), site.name.as_str()), ("EX", "Example"));
        let bad = format!("{BROKER}[mirrorz]\nurl = \"https://m.example.edu\"\n");
        let err = load(&bad, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("mirrorz.abbr"), "{err}");
        assert!(
            load(BROKER, &Overrides::default())
                .unwrap()
                .config
                .mirrorz
                .is_none()
        );
    }

    #[test]
    fn defaults_are_tunasyncs() {
        let loaded = load(BROKER, &Overrides::default()).unwrap();
        let config = loaded.config;
        assert_eq!(config.server.addr, "127.0.0.1");
        assert_eq!(config.server.port, 14242);
        assert!(config.server.ssl_cert.is_none());
        assert_eq!(config.db_file, Path::new(DEFAULT_DB_FILE));
        assert_eq!(config.commands.timeout, Duration::from_secs(5));
        assert_eq!(config.liveness.offline_after, Duration::from_secs(30));
        assert!(config.auth.trusted_networks.is_empty());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn reads_tunasyncs_manager_conf_with_warnings_for_what_is_gone() {
        let text = format!(
            "debug = true\n[server]\naddr = \"0.0.0.0\"\nport = 12345\nssl_cert = \"a.crt\"\nssl_key = \"a.key\"\n\
             [files]\ndb_type = \"redb\"\ndb_file = \"/tmp/x.redb\"\nstatus_file = \"/tmp/tunasync.json\"\nca_cert = \"ca.crt\"\n\
             {BROKER}[auth]\ntrusted_networks = [\"127.0.0.0/8\", \"::1/128\"]\ntokens_file = \"/etc/t\"\n\
             [commands]\ntimeout = \"2s\"\nexpiry = \"1m\"\n[liveness]\noffline_after = \"45s\"\n[mystery]\nx = 1\n"
        );
        let loaded = load(&text, &Overrides::default()).unwrap();
        let config = loaded.config;
        assert!(config.debug);
        assert_eq!(config.server.port, 12345);
        assert_eq!(config.server.addr, "0.0.0.0");
        assert_eq!(config.db_file, Path::new("/tmp/x.redb"));
        assert_eq!(config.auth.trusted_networks.len(), 2);
        assert_eq!(config.commands.expiry, Duration::from_secs(60));
        assert_eq!(config.liveness.offline_after, Duration::from_secs(45));
        let warnings = loaded.warnings.join("\n");
        assert!(warnings.contains("status_file"), "{warnings}");
        assert!(warnings.contains("files.ca_cert"), "{warnings}");
        assert!(warnings.contains("unknown key `mystery`"), "{warnings}");
    }

    #[test]
    fn flags_override_the_file() {
        let text = format!("[server]\nport = 1\n[files]\ndb_file = \"/a\"\n{BROKER}");
        let overrides = Overrides {
            addr: Some("::1".into()),
            port: Some(2),
            cert: Some("c".into()),
            key: None,
            db_file: Some("/b".into()),
            ..Overrides::default()
        };
        let config = load(&text, &overrides).unwrap().config;
        assert_eq!(config.server.addr, "::1");
        assert_eq!(config.server.port, 2);
        assert!(
            config.server.ssl_cert.is_none(),
            "--cert without --key is not applied"
        );
        assert_eq!(config.db_file, Path::new("/b"));
    }

    #[test]
    fn bad_values_name_the_file_and_key() {
        let cases = [
            (
                format!("[files]\ndb_type = \"bolt\"\n{BROKER}"),
                "manager.conf: `files.db_type`: unsupported db_type \"bolt\"",
            ),
            (
                "debug = true\n".to_owned(),
                "`broker`: the [broker] section is required",
            ),
            (
                "[broker]\nurl = \"amqps://x\"\n".to_owned(),
                "`broker`: `ca_cert` is required",
            ),
            (format!("[server]\nport = \"x\"\n{BROKER}"), "manager.conf"),
            (format!("[server]\nport = 70000\n{BROKER}"), "manager.conf"),
            (
                format!("[server]\naddr = \"localhost\"\n{BROKER}"),
                "`server.addr`",
            ),
            (
                format!("[server]\nssl_cert = \"a\"\n{BROKER}"),
                "`server.ssl_cert`",
            ),
            (
                format!("{BROKER}[auth]\ntrusted_networks = [\"10.0.0.0/33\"]\n"),
                "10.0.0.0/33",
            ),
            (
                format!("{BROKER}[auth]\nrequire_client_cert = true\n"),
                "`auth.require_client_cert`",
            ),
            (
                format!("{BROKER}[commands]\ntimeout = \"soon\"\n"),
                "invalid duration \"soon\"",
            ),
            (
                format!("{BROKER}[commands]\ntimeout = \"0s\"\n"),
                "`commands.timeout`",
            ),
            (
                format!("{BROKER}[history]\nruns_per_job = 0\n"),
                "`history.runs_per_job`",
            ),
            (
                format!(
                    "{BROKER}[[alerts.sinks]]\nname = \"ops\"\nkind = \"chat\"\nurl = \"ftp://x\"\n"
                ),
                "`alerts.sinks.url`: sink 1 (\"ops\"): \"ftp://x\" is not an http:// or https:// URL",
            ),
            (
                format!(
                    "{BROKER}[[alerts.sinks]]\nname = \"ops\"\nkind = \"pager\"\nurl = \"http://x\"\n"
                ),
                "unknown variant `pager`",
            ),
            (
                format!("{BROKER}[alerts]\nstale_after = \"0s\"\n"),
                "`alerts.stale_after`",
            ),
            (
                format!("{BROKER}[alerts.mirror_stale_after]\ndebian = \"soon\"\n"),
                "debian: invalid duration \"soon\"",
            ),
            ("[server\n".to_owned(), "manager.conf"),
        ];
        for (text, expected) in cases {
            let err = load(&text, &Overrides::default()).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn alerts_section() {
        let text = format!(
            "{BROKER}[alerts]\nfailures = 2\nstale_after = \"2d\"\n\
             [alerts.mirror_stale_after]\ndebian = \"6h\"\n\
             [[alerts.sinks]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093/api/v2/alerts\"\n\
             [[alerts.sinks]]\nname = \"chat\"\nkind = \"chat\"\nurl = \"https://chat.example.org/hooks/x\"\nmax_per_minute = 5\n"
        );
        let alerts = load(&text, &Overrides::default())
            .unwrap()
            .config
            .alerts
            .unwrap();
        assert_eq!(alerts.failures, 2);
        assert!(alerts.worker_offline, "on by default");
        let debian = tunasync_shared::names::MirrorName::new("debian").unwrap();
        let ubuntu = tunasync_shared::names::MirrorName::new("ubuntu").unwrap();
        assert_eq!(
            alerts.stale_limit(&debian),
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            alerts.stale_limit(&ubuntu),
            Some(Duration::from_secs(2 * 86400))
        );
        assert_eq!(alerts.sinks.len(), 2);
        assert_eq!(alerts.sinks[0].max_per_minute, 20);
        assert_eq!(alerts.sinks[1].max_per_minute, 5);
        assert!(
            load(BROKER, &Overrides::default())
                .unwrap()
                .config
                .alerts
                .is_none()
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = ManagerConfig::load(
            Some(Path::new("/nonexistent/manager.conf")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "cannot read /nonexistent/manager.conf");
    }
}
