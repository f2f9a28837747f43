//! Optional bearer-token authentication, separate for producers (`Push`) and
//! workers (`Work`).
//!
//! [`Auth::check`] is called by each RPC handler with the request metadata and
//! the [`Role`] the RPC needs. Tokens are compared in constant time (over
//! their SHA-256 digests, so the length leaks nothing either), and error
//! messages never echo what the client sent.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::config::{Config, Secret};

/// Who an RPC is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `Push`: needs the producer token when one is configured.
    Producer,
    /// `Work`: needs the worker token when one is configured.
    Worker,
}

impl Role {
    fn rpc(self) -> &'static str {
        match self {
            Role::Producer => "Push",
            Role::Worker => "Work",
        }
    }
}

/// The configured tokens, kept as digests.
#[derive(Clone, Default)]
pub struct Auth {
    producer: Option<[u8; 32]>,
    worker: Option<[u8; 32]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("producer_token", &self.producer.is_some())
            .field("worker_token", &self.worker.is_some())
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Auth {
    /// Tokens for each role; `None` leaves that role's RPC open. An empty
    /// token counts as none.
    pub fn new(producer: Option<&Secret>, worker: Option<&Secret>) -> Auth {
        let keep = |s: Option<&Secret>| {
            s.filter(|s| !s.expose().is_empty())
                .map(|s| digest(s.expose().as_bytes()))
        };
        Auth {
            producer: keep(producer),
            worker: keep(worker),
        }
    }

    /// The tokens of a [`Config`].
    pub fn from_config(config: &Config) -> Auth {
        Auth::new(config.producer_token.as_ref(), config.worker_token.as_ref())
    }

    /// Whether `role` needs a token.
    pub fn required(&self, role: Role) -> bool {
        self.expected(role).is_some()
    }

    fn expected(&self, role: Role) -> Option<&[u8; 32]> {
        match role {
            Role::Producer => self.producer.as_ref(),
            Role::Worker => self.worker.as_ref(),
        }
    }

    /// Checks the `authorization: Bearer <token>` metadata of a call to an RPC
    /// for `role`.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when a token is required and the call carries none,
    /// a malformed one, or one that is not the `role`'s token (a producer
    /// token does not open `Work`, nor a worker token `Push`).
    pub fn check(&self, role: Role, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = self.expected(role) else {
            return Ok(());
        };
        let rpc = role.rpc();
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "{rpc} requires a token: send metadata `authorization: Bearer <token>`"
            )));
        };
        let token = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "{rpc}: authorization metadata must have the form `Bearer <token>`"
                ))
            })?;
        if bool::from(digest(token.trim_ascii()).ct_eq(expected)) {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!(
                "{rpc}: the bearer token is not valid for this rpc"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tonic::Code;

    fn secret(s: &str) -> Secret {
        Secret::from_str(s).unwrap()
    }

    fn meta(value: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(v) = value {
            m.insert("authorization", v.parse().unwrap());
        }
        m
    }

    #[test]
    fn open_when_no_token_is_configured() {
        let auth = Auth::new(None, Some(&secret("")));
        assert!(auth.check(Role::Producer, &meta(None)).is_ok());
        assert!(auth.check(Role::Worker, &meta(Some("Bearer x"))).is_ok());
        assert!(!auth.required(Role::Worker));
    }

    #[test]
    fn roles_have_separate_tokens() {
        let auth = Auth::new(Some(&secret("p-token")), Some(&secret("w-token")));
        assert!(
            auth.check(Role::Producer, &meta(Some("Bearer p-token")))
                .is_ok()
        );
        assert!(
            auth.check(Role::Worker, &meta(Some("Bearer w-token")))
                .is_ok()
        );
        let e = auth
            .check(Role::Worker, &meta(Some("Bearer p-token")))
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(
            auth.check(Role::Producer, &meta(Some("Bearer w-token")))
                .is_err()
        );
    }

    #[test]
    fn failures_are_clear_and_never_echo_the_token() {
        let auth = Auth::new(Some(&secret("right")), None);
        for (sent, expect) in [
            (None, "requires a token"),
            (Some("Basic wrong-secret"), "Bearer <token>"),
            (Some("Bearer wrong-secret"), "not valid"),
            (Some("Bearer "), "not valid"),
        ] {
            let e = auth.check(Role::Producer, &meta(sent)).unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated);
            assert!(e.message().contains(expect), "{}", e.message());
            assert!(!e.message().contains("wrong-secret"));
            assert!(!e.message().contains("right"));
        }
        assert!(!format!("{auth:?}").contains("right"));
    }
}
