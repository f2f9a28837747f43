//! [`FaktoryUrl`]: where Faktory is and how to reach it, parsed from `FAKTORY_URL`
//! (`tcp://[:password@]host[:port]` or `tcp+tls://...`; default `tcp://localhost:7419`).

use std::fmt;

use super::error::Error;

/// Faktory's default port.
pub const DEFAULT_PORT: u16 = 7419;
/// The URL used when `FAKTORY_URL` is not set.
pub const DEFAULT_URL: &str = "tcp://localhost:7419";
/// The environment variable [`FaktoryUrl::from_env`] reads.
pub const URL_ENV_VAR: &str = "FAKTORY_URL";

/// A parsed Faktory address. `Display` and `Debug` show the password as `<redacted>`.
///
/// The password is the URL's userinfo password (`tcp://:secret@host`); any user name before the
/// colon is ignored, as Faktory has no user names. Percent-escapes (`%40`) in the password are
/// decoded so that passwords with reserved characters can be written.
#[derive(Clone, PartialEq, Eq)]
pub struct FaktoryUrl {
    tls: bool,
    host: String,
    port: u16,
    password: Option<String>,
}

impl FaktoryUrl {
    /// Parses a Faktory URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] naming the problem: unknown scheme, missing host, bad port,
    /// unexpected path or query.
    pub fn parse(input: &str) -> Result<FaktoryUrl, Error> {
        let input = input.trim();
        let (tls, rest) = if let Some(rest) = input.strip_prefix("tcp://") {
            (false, rest)
        } else if let Some(rest) = input.strip_prefix("tcp+tls://") {
            (true, rest)
        } else {
            let scheme = input.split_once("://").map_or("", |(s, _)| s);
            return Err(invalid(if scheme.is_empty() {
                "missing scheme; expected tcp:// or tcp+tls://".to_owned()
            } else {
                format!("unsupported scheme {scheme:?}; expected tcp or tcp+tls")
            }));
        };
        // The password may contain '/', '@' or ':', so the host part is what follows the
        // last '@' and the userinfo is everything before it.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let hostport = match hostpart.find(['/', '?', '#']) {
            Some(i) if hostpart[i..] == *"/" => &hostpart[..i],
            Some(i) => {
                return Err(invalid(format!(
                    "unexpected path or query {:?} after the host",
                    &hostpart[i..]
                )));
            }
            None => hostpart,
        };
        let (host, port) = split_host_port(hostport)?;
        let password = match userinfo {
            None => None,
            Some(info) => {
                let pw = info.split_once(':').map_or("", |(_, pw)| pw);
                (!pw.is_empty()).then(|| percent_decode(pw))
            }
        };
        Ok(FaktoryUrl {
            tls,
            host,
            port,
            password,
        })
    }

    /// Reads `FAKTORY_URL`, falling back to `tcp://localhost:7419` when it is unset or empty.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the variable is set but cannot be parsed (or is not UTF-8).
    pub fn from_env() -> Result<FaktoryUrl, Error> {
        match std::env::var(URL_ENV_VAR) {
            Ok(v) if !v.trim().is_empty() => FaktoryUrl::parse(&v),
            Ok(_) | Err(std::env::VarError::NotPresent) => FaktoryUrl::parse(DEFAULT_URL),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(invalid(format!("{URL_ENV_VAR} is not valid utf-8")))
            }
        }
    }

    /// Whether the connection uses TLS (`tcp+tls://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (7419 unless given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password, if the URL has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl std::str::FromStr for FaktoryUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaktoryUrl::parse(s)
    }
}

impl Default for FaktoryUrl {
    fn default() -> Self {
        FaktoryUrl {
            tls: false,
            host: "localhost".to_owned(),
            port: DEFAULT_PORT,
            password: None,
        }
    }
}

impl fmt::Display for FaktoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "tcp+tls://" } else { "tcp://" })?;
        if self.password.is_some() {
            f.write_str(":<redacted>@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for FaktoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaktoryUrl({self})")
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidUrl { reason }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(invalid("unclosed '[' in ipv6 host".to_owned()));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(format!("unexpected {after:?} after ipv6 host"))),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("missing host".to_owned()));
    }
    if host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!("host {host:?} contains whitespace")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(invalid(format!("port {p:?} is not a number in 1..=65535")));
            }
            Ok(p) => p,
        },
    };
    Ok((host.to_owned(), port))
}

/// Decodes `%XX` escapes; anything that is not a valid escape stays as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> String {
        match FaktoryUrl::parse(input) {
            Err(Error::InvalidUrl { reason }) => reason,
            other => panic!("expected InvalidUrl for {input:?}, got {other:?}"),
        }
    }

    #[test]
    fn plain_url_with_defaults() {
        let u = FaktoryUrl::parse("tcp://localhost").unwrap();
        assert!(!u.is_tls());
        assert_eq!(
            (u.host(), u.port(), u.password()),
            ("localhost", 7419, None)
        );
        assert_eq!(u, FaktoryUrl::default());
        assert_eq!(
            FaktoryUrl::parse(DEFAULT_URL).unwrap(),
            FaktoryUrl::default()
        );
    }

    #[test]
    fn password_port_and_tls() {
        let u = FaktoryUrl::parse("tcp+tls://:s3cr3t@faktory.example:7500/").unwrap();
        assert!(u.is_tls());
        assert_eq!(u.host(), "faktory.example");
        assert_eq!(u.port(), 7500);
        assert_eq!(u.password(), Some("s3cr3t"));
    }

    #[test]
    fn user_name_is_ignored_and_reserved_chars_survive() {
        let u = FaktoryUrl::parse("tcp://admin:p@ss:w/rd@10.0.0.1:7419").unwrap();
        assert_eq!(u.host(), "10.0.0.1");
        assert_eq!(u.password(), Some("p@ss:w/rd"));
        let u = FaktoryUrl::parse("tcp://:a%40b%zz@h").unwrap();
        assert_eq!(u.password(), Some("a@b%zz"));
        let u = FaktoryUrl::parse("tcp://:@h").unwrap();
        assert_eq!(u.password(), None);
    }

    #[test]
    fn ipv6_hosts() {
        let u = FaktoryUrl::parse("tcp://[::1]:7000").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 7000));
        assert_eq!(u.to_string(), "tcp://[::1]:7000");
        let u = FaktoryUrl::parse("tcp://[fe80::1]").unwrap();
        assert_eq!((u.host(), u.port()), ("fe80::1", 7419));
        assert!(reason("tcp://[::1").contains("unclosed"));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(reason("localhost:7419").contains("missing scheme"));
        assert!(reason("redis://localhost").contains("\"redis\""));
        assert!(reason("tcp://").contains("missing host"));
        assert!(reason("tcp://:pw@:7419").contains("missing host"));
        assert!(reason("tcp://host:abc").contains("\"abc\""));
        assert!(reason("tcp://host:0").contains("port"));
        assert!(reason("tcp://host:70000").contains("port"));
        assert!(reason("tcp://host/queue").contains("path"));
    }

    #[test]
    fn password_never_shown() {
        let u = FaktoryUrl::parse("tcp+tls://:hunter2@host:1234").unwrap();
        let shown = format!("{u} {u:?} {u:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(u.to_string(), "tcp+tls://:<redacted>@host:1234");
        // Errors about the rest of the URL do not echo the password either.
        let e = FaktoryUrl::parse("tcp://:hunter2@host:port").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }
}
