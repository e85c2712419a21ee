//! Who may change state: a bearer token from the tokens file, a peer in a trusted network,
//! or (when the API requires them) any client with a certificate from the configured CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_error::ApiError;
use crate::cidr::Cidr;

#[derive(Debug, Default)]
pub struct Auth {
    tokens: Vec<String>,
    trusted: Vec<Cidr>,
    /// The TLS layer already refused clients without a good certificate.
    client_certificates: bool,
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
            Some(path) => std::fs::read_to_string(path)
                .map_err(|source| TokensError {
                    path: path.display().to_string(),
                    source,
                })?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        Ok(Auth {
            tokens,
            trusted,
            client_certificates,
        })
    }

    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
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
            return Err(ApiError::Unauthorized(
                "authentication required: send Authorization: Bearer <token>".to_owned(),
            ));
        };
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !token.is_empty()
            && self
                .tokens
                .iter()
                .any(|known| constant_time_eq(known.as_bytes(), token.as_bytes()))
        {
            Ok(())
        } else {
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
        let certificates = Auth::new(None, Vec::new(), true).unwrap();
        assert!(certificates.allows(Some(outside), None).is_ok());
        assert!(Auth::new(Some(Path::new("/nonexistent/tokens")), Vec::new(), false).is_err());
    }
}
