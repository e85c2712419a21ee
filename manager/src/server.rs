//! Serving the API: HTTPS with rustls (optionally requiring client certificates), or plain
//! HTTP when no certificate is configured.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_util::sync::CancellationToken;

/// How long open requests may finish after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}")]
    Pem {
        what: &'static str,
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {path} holds no certificate")]
    Empty { what: &'static str, path: String },
    #[error("invalid TLS settings")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        what,
        path: path.display().to_string(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.display().to_string(),
        });
    }
    Ok(certificates)
}

/// The server's TLS settings: its certificate and key, and the CA of client certificates
/// when they are required.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<RustlsConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("ssl_cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        what: "ssl_key",
        path: key.display().to_string(),
        source,
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates("client CA", ca)? {
                roots.add(certificate)?;
            }
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown`, then drains open requests.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::<SocketAddr>::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        drain.graceful_shutdown(Some(DRAIN));
    });
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    // TCP_NODELAY: a body goes out as several writes (the `GET /jobs` chunks), and Nagle's
    // algorithm would hold a small last one until the client's delayed ACK (40 ms).
    let nodelay = axum_server::accept::NoDelayAcceptor::new();
    match tls {
        Some(tls) => {
            axum_server::from_tcp(listener)?
                .acceptor(RustlsAcceptor::new(tls).acceptor(nodelay))
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)?
                .acceptor(nodelay)
                .handle(handle)
                .serve(service)
                .await
        }
    }
}
