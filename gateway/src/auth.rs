//! Optional bearer-token authentication, separate for producers (`Push`,
//! `POST /v1/jobs`), workers (`Work`) and operators (`Admin.ListWorkers`,
//! `GET /v1/workers`).
//!
//! [`Auth::check`] is called by each RPC handler with the request metadata and
//! the [`Role`] the RPC needs; [`Auth::check_header`] by the HTTP API with
//! the request headers. The operators' role takes the admin token when one
//! is set, else the producer or the worker token, so that listing the
//! workers is never more open than the rest of the gateway. Tokens are compared in constant time (over
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
    /// `ListWorkers`: needs the admin token when one is configured, else the
    /// producer or the worker token when either is.
    Admin,
}

impl Role {
    fn rpc(self) -> &'static str {
        match self {
            Role::Producer => "Push",
            Role::Worker => "Work",
            Role::Admin => "ListWorkers",
        }
    }
}

/// The configured tokens, kept as digests.
#[derive(Clone, Default)]
pub struct Auth {
    producer: Option<[u8; 32]>,
    worker: Option<[u8; 32]>,
    admin: Option<[u8; 32]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("producer_token", &self.producer.is_some())
            .field("worker_token", &self.worker.is_some())
            .field("admin_token", &self.admin.is_some())
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Auth {
    /// Tokens for producers and workers; `None` leaves that role's RPC
    /// open. An empty token counts as none. No admin token (see
    /// [`Auth::with_admin`]).
    pub fn new(producer: Option<&Secret>, worker: Option<&Secret>) -> Auth {
        Auth {
            producer: keep(producer),
            worker: keep(worker),
            admin: None,
        }
    }

    /// The same tokens plus an admin token (an empty one counts as none).
    pub fn with_admin(mut self, admin: Option<&Secret>) -> Auth {
        self.admin = keep(admin);
        self
    }

    /// The tokens of a [`Config`].
    pub fn from_config(config: &Config) -> Auth {
        Auth::new(config.producer_token.as_ref(), config.worker_token.as_ref())
            .with_admin(config.admin_token.as_ref())
    }

    /// Whether `role` needs a token.
    pub fn required(&self, role: Role) -> bool {
        self.accepted(role).iter().any(Option::is_some)
    }

    /// The digests of the tokens that open `role`'s calls (none: open).
    fn accepted(&self, role: Role) -> [Option<&[u8; 32]>; 2] {
        match role {
            Role::Producer => [self.producer.as_ref(), None],
            Role::Worker => [self.worker.as_ref(), None],
            Role::Admin => match &self.admin {
                Some(admin) => [Some(admin), None],
                None => [self.producer.as_ref(), self.worker.as_ref()],
            },
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
        let value = metadata.get("authorization").map(|v| v.as_bytes());
        self.verify(role, value, role.rpc(), "metadata")
    }

    /// As [`Auth::check`], for an HTTP request to `endpoint` (e.g.
    /// `POST /v1/jobs`) with `headers`.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` as for [`Auth::check`]; the HTTP API answers 401.
    pub fn check_header(
        &self,
        role: Role,
        headers: &http::HeaderMap,
        endpoint: &str,
    ) -> Result<(), Status> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        self.verify(role, value, endpoint, "header")
    }

    /// Checks the `authorization` value of a call to `what`, sent as
    /// `carrier` (metadata or header).
    fn verify(
        &self,
        role: Role,
        value: Option<&[u8]>,
        what: &str,
        carrier: &str,
    ) -> Result<(), Status> {
        let accepted = self.accepted(role);
        if accepted.iter().all(Option::is_none) {
            return Ok(());
        }
        let Some(value) = value else {
            return Err(Status::unauthenticated(format!(
                "{what} requires a token: send {carrier} `authorization: Bearer <token>`"
            )));
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "{what}: authorization {carrier} must have the form `Bearer <token>`"
                ))
            })?;
        let sent = digest(token.trim_ascii());
        // Every accepted token is compared, so the time taken says nothing
        // about which one matched.
        let valid = accepted
            .iter()
            .flatten()
            .fold(subtle::Choice::from(0), |ok, expected| {
                ok | sent.ct_eq(*expected)
            });
        if bool::from(valid) {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!(
                "{what}: the bearer token is not valid for this call"
            )))
        }
    }
}

/// The digest of a configured token; an empty token counts as none.
fn keep(secret: Option<&Secret>) -> Option<[u8; 32]> {
    secret
        .filter(|s| !s.expose().is_empty())
        .map(|s| digest(s.expose().as_bytes()))
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
    fn admin_takes_its_own_token_else_any_other() {
        let open = Auth::new(None, None);
        assert!(open.check(Role::Admin, &meta(None)).is_ok());
        let auth = Auth::new(Some(&secret("p-token")), Some(&secret("w-token")));
        assert!(auth.required(Role::Admin));
        assert!(
            auth.check(Role::Admin, &meta(Some("Bearer p-token")))
                .is_ok()
        );
        assert!(
            auth.check(Role::Admin, &meta(Some("Bearer w-token")))
                .is_ok()
        );
        assert!(auth.check(Role::Admin, &meta(None)).is_err());
        let auth = auth.with_admin(Some(&secret("a-token")));
        assert!(
            auth.check(Role::Admin, &meta(Some("Bearer a-token")))
                .is_ok()
        );
        assert!(
            auth.check(Role::Admin, &meta(Some("Bearer p-token")))
                .is_err()
        );
        // The admin token opens nothing else.
        assert!(
            auth.check(Role::Producer, &meta(Some("Bearer a-token")))
                .is_err()
        );
        let mut headers = http::HeaderMap::new();
        let e = auth
            .check_header(Role::Admin, &headers, "GET /v1/workers")
            .unwrap_err();
        assert!(
            e.message()
                .contains("GET /v1/workers requires a token: send header")
        );
        headers.insert("authorization", "Bearer a-token".parse().unwrap());
        assert!(
            auth.check_header(Role::Admin, &headers, "GET /v1/workers")
                .is_ok()
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
