//! TLS on the gRPC port: [`server_tls_config`] reads a PEM certificate chain
//! and private key, checks them with rustls up front (so a bad file fails at
//! start with a clear error, not at the first handshake), and returns tonic's
//! `ServerTlsConfig`.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::transport::{Identity, ServerTlsConfig};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read tls file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("tls file {path} is not valid pem")]
    InvalidPem {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("tls certificate file {path} holds no certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("tls key file {path} holds no private key")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate and key (for example, they do not
    /// belong together or the key type is unsupported).
    #[error("tls certificate and key are not usable together")]
    Rejected(#[source] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Builds tonic's server TLS config from PEM files.
///
/// # Errors
/// [`TlsConfigError`] when a file is unreadable, not PEM, lacks a certificate
/// or key, or the pair is refused by rustls.
pub fn server_tls_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<ServerTlsConfig, TlsConfigError> {
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let invalid = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsConfigError::InvalidPem { path, source }
    };
    let certs = rustls_pemfile::certs(&mut BufReader::new(&cert_pem[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid(cert_path))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
        .map_err(invalid(key_path))?
        .ok_or_else(|| TlsConfigError::NoKey {
            path: key_path.to_owned(),
        })?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsConfigError::Rejected)?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fg-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn good_pair_loads_and_bad_files_say_why() {
        let dir = temp_dir("pair");
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(&dir, "cert.pem", &a.cert.pem());
        let key = write(&dir, "key.pem", &a.signing_key.serialize_pem());
        let other_key = write(&dir, "other.pem", &b.signing_key.serialize_pem());
        let garbage = write(&dir, "garbage.pem", "not pem at all\n");
        server_tls_config(&cert, &key).unwrap();

        let missing = dir.join("missing.pem");
        let err = server_tls_config(&missing, &key).unwrap_err();
        assert!(matches!(err, TlsConfigError::Read { .. }));
        assert!(err.to_string().contains("missing.pem"));
        assert!(matches!(
            server_tls_config(&garbage, &key).unwrap_err(),
            TlsConfigError::NoCertificate { .. }
        ));
        assert!(matches!(
            server_tls_config(&cert, &garbage).unwrap_err(),
            TlsConfigError::NoKey { .. }
        ));
        assert!(matches!(
            server_tls_config(&cert, &cert).unwrap_err(),
            TlsConfigError::NoKey { .. }
        ));
        // rustls checks that the key matches the certificate's public key.
        let mismatch = server_tls_config(&cert, &other_key);
        assert!(
            matches!(mismatch, Err(TlsConfigError::Rejected(_))),
            "{mismatch:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
