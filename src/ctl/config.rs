//! Where tunasynctl finds the manager: defaults, `/etc/tunasync/ctl.conf`,
//! `~/.config/tunasync/ctl.conf`, `-c FILE`, then flags; later sources win.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Common;

pub const DEFAULT_ADDR: &str = "localhost";
pub const DEFAULT_PORT: u16 = 14242;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlConfig {
    pub manager_addr: String,
    pub manager_port: u16,
    pub ca_cert: Option<PathBuf>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CtlFile {
    manager_addr: Option<String>,
    manager_port: Option<u16>,
    ca_cert: Option<PathBuf>,
    token_file: Option<PathBuf>,
}

/// The config files to read before `-c`, and the token from the environment.
pub struct Sources {
    pub files: Vec<PathBuf>,
    pub env_token: Option<String>,
}

impl Sources {
    pub fn system() -> Sources {
        let mut files = vec![PathBuf::from("/etc/tunasync/ctl.conf")];
        if let Some(home) = std::env::var_os("HOME") {
            files.push(Path::new(&home).join(".config/tunasync/ctl.conf"));
        }
        Sources {
            files,
            env_token: std::env::var("TUNASYNC_TOKEN")
                .ok()
                .filter(|token| !token.trim().is_empty()),
        }
    }
}

fn read_file(path: &Path, required: bool) -> Result<Option<CtlFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|err| format!("{}: {}", path.display(), err.to_string().trim_end()))
}

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read the token file {}: {err}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| format!("the token file {} holds no token", path.display()))
}

impl CtlConfig {
    pub fn resolve(flags: &Common, sources: &Sources) -> Result<CtlConfig, String> {
        let mut config = CtlConfig {
            manager_addr: DEFAULT_ADDR.to_owned(),
            manager_port: DEFAULT_PORT,
            ca_cert: None,
            token: None,
        };
        let mut token_file = None;
        let mut files: Vec<(PathBuf, bool)> = sources
            .files
            .iter()
            .map(|path| (path.clone(), false))
            .collect();
        if let Some(path) = &flags.config {
            files.push((path.clone(), true));
        }
        for (path, required) in files {
            let Some(file) = read_file(&path, required)? else {
                continue;
            };
            if let Some(addr) = file.manager_addr {
                config.manager_addr = addr;
            }
            if let Some(port) = file.manager_port {
                config.manager_port = port;
            }
            if let Some(ca) = file.ca_cert.filter(|ca| !ca.as_os_str().is_empty()) {
                config.ca_cert = Some(ca);
            }
            if let Some(file) = file.token_file {
                token_file = Some(file);
            }
        }
        if let Some(addr) = &flags.manager {
            config.manager_addr.clone_from(addr);
        }
        if let Some(port) = flags.port {
            config.manager_port = port;
        }
        if let Some(ca) = &flags.ca_cert {
            config.ca_cert = Some(ca.clone());
        }
        config.token = match (&flags.token_file, &sources.env_token, &token_file) {
            (Some(path), _, _) => Some(read_token(path)?),
            (None, Some(token), _) => Some(token.trim().to_owned()),
            (None, None, Some(path)) => Some(read_token(path)?),
            (None, None, None) => None,
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_win() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("etc.conf");
        let user = dir.path().join("user.conf");
        let explicit = dir.path().join("explicit.conf");
        let token = dir.path().join("token");
        std::fs::write(&system, "manager_addr = \"10.0.0.1\"\nmanager_port = 1\n").unwrap();
        std::fs::write(
            &user,
            format!("manager_port = 2\ntoken_file = {:?}\n", token),
        )
        .unwrap();
        std::fs::write(&explicit, "ca_cert = \"/etc/ca.crt\"\n").unwrap();
        std::fs::write(&token, "# ops\nsecret\n").unwrap();
        let sources = Sources {
            files: vec![system, user, dir.path().join("missing.conf")],
            env_token: None,
        };
        let flags = Common {
            config: Some(explicit.clone()),
            ..Common::default()
        };
        let config = CtlConfig::resolve(&flags, &sources).unwrap();
        assert_eq!(config.manager_addr, "10.0.0.1");
        assert_eq!(config.manager_port, 2);
        assert_eq!(config.ca_cert.as_deref(), Some(Path::new("/etc/ca.crt")));
        assert_eq!(config.token.as_deref(), Some("secret"));

        let flags = Common {
            config: Some(explicit),
            manager: Some("127.0.0.1".into()),
            port: Some(3),
            ..Common::default()
        };
        let sources = Sources {
            env_token: Some("from-env".into()),
            ..sources
        };
        let config = CtlConfig::resolve(&flags, &sources).unwrap();
        assert_eq!(
            (config.manager_addr.as_str(), config.manager_port),
            ("127.0.0.1", 3)
        );
        assert_eq!(
            config.token.as_deref(),
            Some("from-env"),
            "the environment beats the config file"
        );

        let flags = Common {
            config: Some(dir.path().join("nope.conf")),
            ..Common::default()
        };
        assert!(
            CtlConfig::resolve(&flags, &sources)
                .unwrap_err()
                .contains("nope.conf")
        );
        let defaults = CtlConfig::resolve(
            &Common::default(),
            &Sources {
                files: vec![],
                env_token: None,
            },
        )
        .unwrap();
        assert_eq!(
            (defaults.manager_addr.as_str(), defaults.manager_port),
            ("localhost", 14242)
        );
    }
}
