//! The emulated link between workers and what they connect to: the
//! `link-emulator` proxy delaying each direction by half the round-trip
//! time, or nothing at all for a round-trip time of zero (co-located).

use std::net::SocketAddr;
use std::time::Duration;

use link_emulator::LinkEmulator;

use crate::Error;

/// A link to one upstream address. Dropping it closes the proxy.
pub struct Link {
    addr: SocketAddr,
    emulator: Option<LinkEmulator>,
}

impl Link {
    /// A link with round-trip time `rtt` to `upstream`: a delay proxy, or
    /// the upstream itself when `rtt` is zero.
    ///
    /// Fails when the proxy cannot bind its listening socket.
    pub async fn start(upstream: SocketAddr, rtt: Duration) -> Result<Link, Error> {
        if rtt.is_zero() {
            return Ok(Link {
                addr: upstream,
                emulator: None,
            });
        }
        let emulator = LinkEmulator::start(upstream, rtt / 2)
            .await
            .map_err(|e| Error::io("start link emulator", e))?;
        Ok(Link {
            addr: emulator.addr(),
            emulator: Some(emulator),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open through the proxy, or `None` when there is no proxy.
    pub fn connections(&self) -> Option<usize> {
        self.emulator.as_ref().map(LinkEmulator::connection_count)
    }
}

/// `url` (`tcp://[:password@]host:port`) with its host and port replaced by
/// `addr`, keeping scheme and password.
pub fn url_with_addr(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url));
    let userinfo = rest.rsplit_once('@').map(|(user, _)| user);
    match userinfo {
        Some(user) => format!("{scheme}://{user}@{addr}"),
        None => format!("{scheme}://{addr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_host_and_keeps_password() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            url_with_addr("tcp://localhost:7419", addr),
            "tcp://127.0.0.1:9000"
        );
        assert_eq!(
            url_with_addr("tcp://:secret@faktory:7419", addr),
            "tcp://:secret@127.0.0.1:9000"
        );
    }
}
