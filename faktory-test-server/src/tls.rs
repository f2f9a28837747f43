//! Building the rustls acceptor from a [`TlsIdentity`].

use std::io;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::TlsIdentity;

/// Why a TLS identity could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM text could not be read.
    #[error("cannot read pem")]
    Pem(#[source] io::Error),
    /// No certificate in the certificate PEM.
    #[error("no certificate found in cert_pem")]
    NoCertificate,
    /// No private key in the key PEM.
    #[error("no private key found in key_pem")]
    NoKey,
    /// rustls refused the certificate or key.
    #[error("invalid tls identity")]
    Rustls(#[source] rustls::Error),
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// Builds a TLS acceptor (TLS 1.2 and 1.3, ring provider).
pub(crate) fn acceptor(identity: &TlsIdentity) -> Result<TlsAcceptor, TlsError> {
    let certs = rustls_pemfile::certs(&mut identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())
        .map_err(TlsError::Pem)?
        .ok_or(TlsError::NoKey)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Rustls)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
