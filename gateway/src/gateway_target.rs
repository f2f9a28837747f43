//! [`TargetArgs`]: how the binary's client subcommands (`health`, `workers`)
//! find a running gateway. They read the same environment as the gateway:
//! the port comes from `GATEWAY_LISTEN` (wildcard addresses mean loopback),
//! and `GATEWAY_TLS_CERT` switches to TLS, trusting that certificate (chain)
//! unless `--ca` names another CA.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Where the gateway is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TargetArgs {
    /// Gateway to ask, as a URL (http://host:port or https://host:port).
    /// Default: 127.0.0.1 at the port of --listen, https when --tls-cert is
    /// set.
    #[arg(long, value_name = "URL")]
    addr: Option<String>,

    /// The gateway's listen address; only its port is used (0.0.0.0 and ::
    /// mean this machine's loopback).
    #[arg(
        long,
        env = "GATEWAY_LISTEN",
        value_name = "GATEWAY_LISTEN",
        default_value = "0.0.0.0:7421"
    )]
    listen: SocketAddr,

    /// The gateway's TLS certificate (chain): when set, the client uses TLS
    /// and trusts these certificates (unless --ca is given).
    #[arg(long, env = "GATEWAY_TLS_CERT", value_name = "GATEWAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,

    /// PEM file of CA certificates to trust instead of --tls-cert.
    #[arg(long, env = "GATEWAY_HEALTH_CA", value_name = "GATEWAY_HEALTH_CA")]
    ca: Option<PathBuf>,

    /// Name the gateway's certificate must be valid for. Default: the host
    /// of --addr, or "localhost" for the default address.
    #[arg(
        long,
        env = "GATEWAY_HEALTH_TLS_DOMAIN",
        value_name = "GATEWAY_HEALTH_TLS_DOMAIN"
    )]
    tls_domain: Option<String>,

    /// Longest the whole call may take, in milliseconds.
    #[arg(long, env = "GATEWAY_HEALTH_TIMEOUT_MS", value_name = "GATEWAY_HEALTH_TIMEOUT_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

impl TargetArgs {
    /// The URL to ask.
    pub(crate) fn target(&self) -> String {
        if let Some(addr) = &self.addr {
            return addr.clone();
        }
        let ip = match self.listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let scheme = if self.tls_cert.is_some() || self.ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", SocketAddr::new(ip, self.listen.port()))
    }

    /// The limit for the whole call.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The TLS settings for `url`, when it is https.
    fn tls(&self, url: &str) -> anyhow::Result<Option<ClientTlsConfig>> {
        if !url.starts_with("https://") {
            return Ok(None);
        }
        let Some(ca) = self.ca.as_ref().or(self.tls_cert.as_ref()) else {
            bail!("{url} needs TLS: name the CA to trust with --ca or GATEWAY_TLS_CERT");
        };
        let pem = std::fs::read(ca)
            .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        let domain = match (&self.tls_domain, &self.addr) {
            (Some(domain), _) => Some(domain.clone()),
            (None, Some(_)) => None,
            (None, None) => Some("localhost".to_owned()),
        };
        if let Some(domain) = domain {
            tls = tls.domain_name(domain);
        }
        Ok(Some(tls))
    }

    /// The endpoint for `url` (from [`TargetArgs::target`]), with the
    /// timeouts and TLS settings.
    ///
    /// # Errors
    /// A bad URL, an unreadable CA file, or https without a CA to trust.
    pub(crate) fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        let tls = self.tls(url)?;
        let timeout = self.timeout();
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("invalid gateway address {url:?}"))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls)
                .context("invalid TLS settings for the gateway address")?;
        }
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TargetArgs,
    }

    fn parse(args: &[&str]) -> TargetArgs {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = Cli::command().mut_args(|a| a.env(None));
        let matches = cmd
            .try_get_matches_from(std::iter::once("health").chain(args.iter().copied()))
            .expect("valid flags");
        Cli::from_arg_matches(&matches).expect("valid flags").args
    }

    #[test]
    fn default_target_is_loopback_at_the_listen_port() {
        assert_eq!(parse(&[]).target(), "http://127.0.0.1:7421");
        assert_eq!(
            parse(&["--listen", "[::]:9000"]).target(),
            "http://[::1]:9000"
        );
        assert_eq!(
            parse(&["--listen", "10.0.0.5:9000"]).target(),
            "http://10.0.0.5:9000"
        );
        assert_eq!(
            parse(&["--tls-cert", "c.pem"]).target(),
            "https://127.0.0.1:7421"
        );
        assert_eq!(
            parse(&["--addr", "http://gw:1", "--tls-cert", "c.pem"]).target(),
            "http://gw:1"
        );
    }

    #[test]
    fn https_needs_a_ca() {
        let args = parse(&["--addr", "https://gw:1"]);
        let err = args.tls("https://gw:1").unwrap_err().to_string();
        assert!(err.contains("--ca"), "{err}");
        assert!(args.tls("http://gw:1").unwrap().is_none());
    }
}
