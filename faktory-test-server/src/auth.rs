//! The handshake: `HI` greeting, `HELLO` parsing and the password check.
//!
//! Faktory greets with `+HI {"v":2}`; with a password it adds `"i"` (a random iteration count,
//! 4000..8095) and `"s"` (a random hex salt). The client answers `HELLO {json}`, where `pwdhash`
//! is sha256(password + salt) re-hashed `i` times in total, hex-encoded (clients older than
//! protocol 2 hash once). A wrong hash gets `-ERR Invalid password` and the socket is closed; a
//! line that is not `HELLO {...}` or whose JSON does not decode closes the socket silently.

use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::workers::HelloInfo;

/// The password challenge sent in HI.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    iterations: u32,
    salt: String,
}

/// Why a HELLO was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// Not a `HELLO {` line: close without a reply.
    BadPreamble,
    /// HELLO JSON did not decode: close without a reply.
    BadJson,
    /// Wrong or missing password hash: reply `-ERR Invalid password`, then close.
    InvalidPassword,
}

#[derive(Debug, Deserialize)]
struct Hello {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    wid: Option<String>,
    #[serde(default)]
    pid: Option<i64>,
    #[serde(default)]
    labels: Option<Vec<String>>,
    #[serde(default)]
    pwdhash: Option<String>,
    #[serde(default)]
    v: Option<u8>,
}

/// Builds the HI line (without `\r\n`) and the challenge to check HELLO against.
pub(crate) fn greeting(password: Option<&str>) -> (String, Option<Challenge>) {
    match password {
        None => (r#"+HI {"v":2}"#.to_owned(), None),
        Some(_) => {
            let mut rng = rand::rng();
            let challenge = Challenge {
                iterations: rng.random_range(4000..8096),
                salt: format!("{:x}", rng.random_range(0..i64::MAX)),
            };
            let line = format!(
                r#"+HI {{"v":2,"i":{},"s":"{}"}}"#,
                challenge.iterations, challenge.salt
            );
            (line, Some(challenge))
        }
    }
}

/// sha256(password + salt), hashed `iterations` times in total, lowercase hex.
pub fn password_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut digest = Sha256::digest(format!("{password}{salt}").as_bytes());
    for _ in 1..iterations.max(1) {
        digest = Sha256::digest(digest);
    }
    hex::encode(digest)
}

/// Checks a HELLO line (terminator removed) against the server password.
pub(crate) fn check_hello(
    line: &[u8],
    password: Option<&str>,
    challenge: Option<&Challenge>,
) -> Result<HelloInfo, HelloError> {
    let Some(json) = line.strip_prefix(b"HELLO ") else {
        return Err(HelloError::BadPreamble);
    };
    if !json.starts_with(b"{") {
        return Err(HelloError::BadPreamble);
    }
    let hello: Hello = serde_json::from_slice(json).map_err(|_| HelloError::BadJson)?;
    if let (Some(password), Some(challenge)) = (password, challenge) {
        let iterations = if hello.v.unwrap_or(0) < 2 {
            1
        } else {
            challenge.iterations
        };
        let expected = password_hash(password, &challenge.salt, iterations);
        let given = hello.pwdhash.unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(HelloError::InvalidPassword);
        }
    }
    Ok(HelloInfo {
        wid: hello.wid.unwrap_or_default(),
        hostname: hello.hostname.unwrap_or_default(),
        pid: hello.pid.unwrap_or_default(),
        labels: hello.labels.unwrap_or_default(),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_iterates() {
        let once = password_hash("pw", "salt", 1);
        assert_eq!(once, hex::encode(Sha256::digest(b"pwsalt")));
        let twice = password_hash("pw", "salt", 2);
        assert_eq!(
            twice,
            hex::encode(Sha256::digest(Sha256::digest(b"pwsalt")))
        );
    }

    #[test]
    fn hello_checks() {
        let (line, challenge) = greeting(Some("pw"));
        assert!(line.starts_with(r#"+HI {"v":2,"i":"#));
        let c = challenge.unwrap();
        let good = password_hash("pw", &c.salt, c.iterations);
        let hello = format!(r#"HELLO {{"v":2,"wid":"w1","pwdhash":"{good}"}}"#);
        let info = check_hello(hello.as_bytes(), Some("pw"), Some(&c)).unwrap();
        assert_eq!(info.wid, "w1");
        let bad = br#"HELLO {"v":2,"pwdhash":"00"}"#;
        assert_eq!(
            check_hello(bad, Some("pw"), Some(&c)).unwrap_err(),
            HelloError::InvalidPassword
        );
        assert_eq!(
            check_hello(b"HELO {}", None, None).unwrap_err(),
            HelloError::BadPreamble
        );
        assert_eq!(
            check_hello(b"HELLO {", None, None).unwrap_err(),
            HelloError::BadJson
        );
    }
}
