//! Who may change state: a bearer token from the tokens file, a peer in a trusted network,
//! or (when the API requires them) any client with a certificate from the configured CA.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tracing::{debug, warn};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_error::ApiError;
use crate::cidr::Cidr;
use crate::once_log::OnceLog;

#[derive(Debug, Default)]
pub struct Auth {
    /// Read again when its modification time changes: a token removed from the file is
    /// refused from the next request on, without a restart.
    tokens_file: Option<PathBuf>,
    tokens: RwLock<Tokens>,
    trusted: Vec<Cidr>,
    /// The TLS layer already refused clients without a good certificate.
    client_certificates: bool,
    refusals: RefusalLog,
}

#[derive(Debug, Default)]
struct Tokens {
    list: Vec<String>,
    modified: Option<SystemTime>,
}

/// Refused requests are logged once per peer and reason.
#[derive(Debug, Default)]
struct RefusalLog {
    seen: OnceLog<(IpAddr, &'static str)>,
}

impl RefusalLog {
    fn note(&self, peer: Option<SocketAddr>, reason: &'static str) {
        let Some(peer) = peer else {
            return;
        };
        if self.seen.first((peer.ip(), reason)) {
            warn!(peer = %peer.ip(), reason, "API change refused (logged once per peer and reason)");
        } else {
            debug!(peer = %peer.ip(), reason, "API change refused");
        }
    }
}

fn read_tokens(path: &Path) -> Result<Tokens, TokensError> {
    let error = |source| TokensError {
        path: path.display().to_string(),
        source,
    };
    let modified = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok();
    let list = std::fs::read_to_string(path)
        .map_err(error)?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    Ok(Tokens { list, modified })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the tokens file {path}")]
pub struct TokensError {
    path: String,
    #[source]
    source: std::io::Error,
}

impl Auth {
    pub fn new(
        tokens_file: Option<&Path>,
        trusted: Vec<Cidr>,
        client_certificates: bool,
    ) -> Result<Auth, TokensError> {
        let tokens = match tokens_file {
            Some(path) => read_tokens(path)?,
            None => Tokens::default(),
        };
        Ok(Auth {
            tokens_file: tokens_file.map(Path::to_owned),
            tokens: RwLock::new(tokens),
            trusted,
            client_certificates,
            refusals: RefusalLog::default(),
        })
    }

    pub fn n_tokens(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .list
            .len()
    }

    /// Reads the tokens file again if it changed since it was read. A file that cannot be
    /// read keeps the tokens read before (and says so).
    fn refresh_tokens(&self) {
        let Some(path) = &self.tokens_file else {
            return;
        };
        let modified = std::fs::metadata(path)
            .and_then(|metadata| metadata.modified())
            .ok();
        let current = self
            .tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .modified;
        if modified == current {
            return;
        }
        match read_tokens(path) {
            Ok(tokens) => {
                tracing::info!(path = %path.display(), n_tokens = tokens.list.len(), "tokens file read again");
                *self
                    .tokens
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = tokens;
            }
            Err(err) => {
                warn!(error = %tunasync_shared::error_chain(&err), "keeping the tokens read before");
                self.tokens
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .modified = modified;
            }
        }
    }

    fn allows(
        &self,
        peer: Option<SocketAddr>,
        authorization: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.client_certificates {
            return Ok(());
        }
        if let Some(peer) = peer
            && self
                .trusted
                .iter()
                .any(|network| network.contains(peer.ip()))
        {
            return Ok(());
        }
        let Some(authorization) = authorization else {
            self.refusals.note(peer, "no token");
            return Err(ApiError::Unauthorized(
                "authentication required: send Authorization: Bearer <token>".to_owned(),
            ));
        };
        self.refresh_tokens();
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let known = !token.is_empty()
            && self
                .tokens
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .list
                .iter()
                .any(|known| constant_time_eq(known.as_bytes(), token.as_bytes()));
        if known {
            Ok(())
        } else {
            self.refusals.note(peer, "invalid token");
            Err(ApiError::Unauthorized("invalid token".to_owned()))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Whether the request (its peer address, its `Authorization`) may change state.
    pub fn permits(
        &self,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Result<(), ApiError> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        self.allows(peer, authorization)
    }
}

/// Middleware for the routes that change state.
pub async fn require(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    match auth.permits(request.extensions(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_networks_and_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# operators\nsecret-1\n\n  secret-2  \n").unwrap();
        let auth = Auth::new(Some(&file), vec!["10.0.0.0/8".parse().unwrap()], false).unwrap();
        assert_eq!(auth.n_tokens(), 2);
        let outside: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let inside: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        assert!(auth.allows(Some(outside), Some("Bearer secret-1")).is_ok());
        assert!(auth.allows(Some(outside), Some("Bearer secret-2")).is_ok());
        assert!(auth.allows(Some(inside), None).is_ok());
        let err = auth.allows(Some(outside), None).unwrap_err().to_string();
        assert!(err.contains("authentication required"), "{err}");
        for bad in [
            "Bearer secret-3",
            "Bearer ",
            "secret-1",
            "Basic c2VjcmV0LTE=",
            "Bearer # operators",
        ] {
            assert_eq!(
                auth.allows(Some(outside), Some(bad))
                    .unwrap_err()
                    .to_string(),
                "invalid token",
                "{bad}"
            );
        }
        // A token removed from the file is refused from the next request on.
        std::fs::write(&file, "secret-2\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(auth.allows(Some(outside), Some("Bearer secret-1")).is_err());
        assert!(auth.allows(Some(outside), Some("Bearer secret-2")).is_ok());
        assert_eq!(auth.n_tokens(), 1);
        // A file that cannot be read keeps what was read.
        std::fs::remove_file(&file).unwrap();
        assert!(auth.allows(Some(outside), Some("Bearer secret-2")).is_ok());
        let certificates = Auth::new(None, Vec::new(), true).unwrap();
        assert!(certificates.allows(Some(outside), None).is_ok());
        assert!(Auth::new(Some(Path::new("/nonexistent/tokens")), Vec::new(), false).is_err());
    }
}
