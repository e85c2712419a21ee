//! HTTP clients for what the manager calls out to (Go workers, alert sinks): with a CA file
//! named, HTTPS trusts only the certificates in it; without one, the system's roots.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {}", path.display())]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("the CA file {} is not PEM certificates", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot make the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// The client `builder` makes, trusting only the certificates of `ca_cert` for HTTPS when
/// it is given.
pub fn build(
    builder: reqwest::ClientBuilder,
    ca_cert: Option<&Path>,
) -> Result<reqwest::Client, ClientError> {
    // reqwest needs a process-wide TLS provider; the other TLS users name theirs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = match ca_cert {
        Some(path) => builder.tls_certs_only(certificates(path)?),
        None => builder,
    };
    builder.build().map_err(ClientError::Build)
}

fn certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(path).map_err(|source| ClientError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| ClientError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(ClientError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = build(reqwest::Client::builder(), Some(&missing)).unwrap_err();
        assert!(matches!(err, ClientError::ReadCa { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = build(reqwest::Client::builder(), Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        assert!(build(reqwest::Client::builder(), None).is_ok());
    }
}
