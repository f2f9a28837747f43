//! The byte stream under a [`Connection`](super::Connection): plain TCP or TLS over TCP
//! (tokio-rustls with the webpki roots plus an optional extra CA file for self-signed servers).

use std::{
    io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::error::{Error, TlsError};
use super::url::FaktoryUrl;

/// TCP or TLS; both halves are `Unpin`, so polling just forwards.
#[derive(Debug)]
pub(crate) enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// Opens TCP to the URL's host and, for `tcp+tls://`, runs the TLS handshake.
    pub(crate) async fn open(url: &FaktoryUrl, tls_ca: Option<&Path>) -> Result<Transport, Error> {
        let tcp = TcpStream::connect((url.host(), url.port())).await?;
        // Commands go out in whole batches, so Nagle would only add latency.
        tcp.set_nodelay(true)?;
        if !url.is_tls() {
            return Ok(Transport::Tcp(tcp));
        }
        let connector = TlsConnector::from(client_config(tls_ca)?);
        let name = ServerName::try_from(url.host().to_owned()).map_err(|_| {
            Error::Tls(TlsError::ServerName {
                host: url.host().to_owned(),
            })
        })?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Tls(TlsError::Handshake(e)))?;
        Ok(Transport::Tls(Box::new(tls)))
    }

    /// Whether this is a TLS stream.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Whether [`Transport::set_read_low_water`] has any effect: plain TCP on Linux. Under TLS
    /// the bytes the kernel holds are not the bytes a reader waits for (rustls may already
    /// hold most of a record), so no byte count could be promised there.
    pub(crate) fn has_read_low_water(&self) -> bool {
        cfg!(target_os = "linux") && matches!(self, Transport::Tcp(_))
    }

    /// Sets the socket's `SO_RCVLOWAT`: the kernel reports the socket readable (and wakes the
    /// runtime's poller) only once `bytes` are unread, or the peer closed. Reads themselves are
    /// unaffected: a non-blocking read returns whatever has arrived. Lowering it signals
    /// readiness at once when enough is unread already. A no-op where
    /// [`Transport::has_read_low_water`] is false.
    pub(crate) fn set_read_low_water(&self, bytes: usize) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Transport::Tcp(tcp) => set_rcvlowat(tcp, bytes),
            _ => {
                let _ = bytes;
                Ok(())
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn set_rcvlowat(tcp: &TcpStream, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes.max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor is the open socket `tcp` owns (borrowed for the call), and the
    // option value is a live `c_int` whose size is passed along, as setsockopt(2) requires.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).expect("c_int size fits"),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The client TLS configuration: webpki roots plus every certificate in `tls_ca`.
fn client_config(tls_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = tls_ca {
        let pem = std::fs::read(path).map_err(|source| {
            Error::Tls(TlsError::ReadCa {
                path: path.to_owned(),
                source,
            })
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|source| {
                Error::Tls(TlsError::ReadCa {
                    path: path.to_owned(),
                    source,
                })
            })?;
            roots
                .add(cert)
                .map_err(|e| Error::Tls(TlsError::Config(e)))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls(TlsError::NoCertificate {
                path: path.to_owned(),
            }));
        }
    }
    // An explicit provider: the process may link more than one rustls backend.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(TlsError::Config(e)))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_ca_file_is_a_clear_error() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            matches!(err, Error::Tls(TlsError::ReadCa { .. })),
            "{err:?}"
        );
        let empty =
            std::env::temp_dir().join(format!("faktory-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err();
        let _ = std::fs::remove_file(&empty);
        assert!(
            matches!(err, Error::Tls(TlsError::NoCertificate { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn default_roots_build() {
        assert!(client_config(None).is_ok());
    }
}
