//! The handshake: reading Faktory's `HI`, answering `HELLO` (with the password hash when asked),
//! and [`Identity`], who a worker connection says it is.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Error;
use super::resp::Reply;
use super::url::FaktoryUrl;

/// The protocol version this client speaks.
const PROTOCOL_VERSION: u8 = 2;

/// Who a worker connection is. Connections with an identity register a Faktory process (wid)
/// that must `BEAT`; producer-only connections pass no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The worker id, unique per process.
    pub wid: String,
    /// The host name shown in Faktory's UI.
    pub hostname: String,
    /// The process id shown in Faktory's UI.
    pub pid: u32,
    /// Labels shown in Faktory's UI.
    pub labels: Vec<String>,
}

impl Identity {
    /// An identity with the given wid, this machine's host name, this process's id and no labels.
    pub fn new(wid: impl Into<String>) -> Identity {
        Identity {
            wid: wid.into(),
            hostname: local_hostname(),
            pid: std::process::id(),
            labels: Vec::new(),
        }
    }

    /// An identity with a random 16-hex-digit wid (see [`Identity::new`]).
    pub fn generate() -> Identity {
        Identity::new(format!("{:016x}", rand::random::<u64>()))
    }

    /// Replaces the labels.
    pub fn with_labels(mut self, labels: impl IntoIterator<Item = impl Into<String>>) -> Identity {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }
}

fn local_hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[derive(Debug, Deserialize)]
struct Hi {
    v: u32,
    #[serde(default)]
    i: Option<u32>,
    #[serde(default)]
    s: Option<String>,
}

/// The `HELLO` payload.
#[derive(Debug, Serialize)]
pub(crate) struct Hello<'a> {
    v: u8,
    hostname: std::borrow::Cow<'a, str>,
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    wid: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    labels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pwdhash: Option<String>,
}

impl Hello<'_> {
    /// Whether this HELLO carries a password hash.
    pub(crate) fn has_password(&self) -> bool {
        self.pwdhash.is_some()
    }
}

/// Builds the HELLO that answers Faktory's `HI` reply.
///
/// # Errors
/// [`Error::UnexpectedReply`] when the greeting is not `+HI {json}`; [`Error::Auth`] when
/// Faktory asks for a password and the URL has none.
pub(crate) fn answer_hi<'a>(
    greeting: &Reply,
    url: &FaktoryUrl,
    identity: Option<&'a Identity>,
) -> Result<Hello<'a>, Error> {
    let unexpected = || Error::UnexpectedReply {
        command: "connect (HI)",
        reply: greeting.summary(),
    };
    let Reply::Simple(line) = greeting else {
        return Err(unexpected());
    };
    let json = line.strip_prefix(b"HI ").ok_or_else(unexpected)?;
    let hi: Hi = serde_json::from_slice(json).map_err(|_| unexpected())?;
    if hi.v > u32::from(PROTOCOL_VERSION) {
        tracing::warn!(
            server_version = hi.v,
            client_version = PROTOCOL_VERSION,
            "faktory speaks a newer protocol version"
        );
    }
    let pwdhash = match (hi.s, url.password()) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(Error::Auth {
                reason: "faktory requires a password and the faktory url has none".to_owned(),
            });
        }
        (Some(salt), Some(password)) => Some(password_hash(password, &salt, hi.i.unwrap_or(1))),
    };
    Ok(match identity {
        Some(id) => Hello {
            v: PROTOCOL_VERSION,
            hostname: id.hostname.as_str().into(),
            pid: id.pid,
            wid: Some(&id.wid),
            labels: &id.labels,
            pwdhash,
        },
        None => Hello {
            v: PROTOCOL_VERSION,
            hostname: local_hostname().into(),
            pid: std::process::id(),
            wid: None,
            labels: &[],
            pwdhash,
        },
    })
}

/// Checks Faktory's reply to HELLO.
pub(crate) fn check_hello_reply(reply: Reply, sent_password: bool) -> Result<(), Error> {
    match reply {
        Reply::Simple(ref ok) if ok.as_ref() == b"OK" => Ok(()),
        Reply::Error(line) => {
            let e = super::error::ServerError::from_line(&line);
            if sent_password || e.message.to_ascii_lowercase().contains("password") {
                Err(Error::Auth {
                    reason: e.to_string(),
                })
            } else {
                Err(Error::Server(e))
            }
        }
        other => Err(Error::UnexpectedReply {
            command: "HELLO",
            reply: other.summary(),
        }),
    }
}

/// sha256(password + salt), then re-hashed until it has been hashed `iterations` times in
/// total; lowercase hex.
pub(crate) fn password_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(password.as_bytes());
    hasher.update(salt.as_bytes());
    let mut digest = hasher.finalize();
    for _ in 1..iterations.max(1) {
        digest = Sha256::digest(digest);
    }
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn hi(text: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(text.as_bytes()))
    }

    #[test]
    fn hash_matches_manual_iteration() {
        // One iteration is plain sha256 of password+salt.
        assert_eq!(
            password_hash("pw", "salt", 1),
            hex::encode(Sha256::digest(b"pwsalt"))
        );
        let twice = Sha256::digest(Sha256::digest(b"pwsalt"));
        assert_eq!(password_hash("pw", "salt", 2), hex::encode(twice));
        assert_eq!(
            password_hash("pw", "salt", 0),
            password_hash("pw", "salt", 1)
        );
    }

    #[test]
    fn hello_without_password_or_identity() {
        let url = FaktoryUrl::parse("tcp://:pw@localhost").unwrap();
        let hello = answer_hi(&hi(r#"HI {"v":2}"#), &url, None).unwrap();
        let json = serde_json::to_value(&hello).unwrap();
        assert_eq!(json["v"], 2);
        assert!(
            json.get("pwdhash").is_none(),
            "no password asked, none sent"
        );
        assert!(json.get("wid").is_none());
        assert!(json["hostname"].is_string());
    }

    #[test]
    fn hello_with_password_and_identity() {
        let url = FaktoryUrl::parse("tcp://:pw@localhost").unwrap();
        let id = Identity::new("w1").with_labels(["gateway"]);
        let hello = answer_hi(&hi(r#"HI {"v":2,"i":3,"s":"abc"}"#), &url, Some(&id)).unwrap();
        assert!(hello.has_password());
        let json = serde_json::to_value(&hello).unwrap();
        assert_eq!(json["wid"], "w1");
        assert_eq!(json["labels"], serde_json::json!(["gateway"]));
        assert_eq!(json["pid"], std::process::id());
        assert_eq!(json["pwdhash"], password_hash("pw", "abc", 3));
    }

    #[test]
    fn password_required_but_missing() {
        let url = FaktoryUrl::parse("tcp://localhost").unwrap();
        let err = answer_hi(&hi(r#"HI {"v":2,"i":3,"s":"abc"}"#), &url, None).unwrap_err();
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    }

    #[test]
    fn bad_greetings() {
        let url = FaktoryUrl::default();
        for bad in [
            hi("HELLO"),
            hi("HI {"),
            Reply::Integer(1),
            Reply::Bulk(None),
        ] {
            let err = answer_hi(&bad, &url, None).unwrap_err();
            assert!(matches!(err, Error::UnexpectedReply { .. }), "{err:?}");
        }
    }

    #[test]
    fn hello_replies() {
        assert!(check_hello_reply(hi("OK"), false).is_ok());
        let bad_pw = Reply::Error(Bytes::from_static(b"ERR Invalid password"));
        assert!(matches!(
            check_hello_reply(bad_pw, true),
            Err(Error::Auth { .. })
        ));
        let other = Reply::Error(Bytes::from_static(b"ERR Invalid wid"));
        assert!(matches!(
            check_hello_reply(other, false),
            Err(Error::Server(_))
        ));
    }
}
