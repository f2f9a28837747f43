//! Tests of the `faktory-gateway` binary itself: it starts, serves, and on
//! SIGTERM drains and exits 0; `--log-format json` writes JSON lines; a bad
//! option value exits non-zero naming the variable; `faktory-gateway health`
//! exits 0 only for a SERVING gateway (plain and TLS, address from
//! `GATEWAY_LISTEN` as in the Docker image).

mod common;

use std::process::Stdio;

use common::Gateway;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_faktory-gateway");

type LogLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Starts the binary for `faktory_url` with `extra` flags and reads its
/// logs up to the "gateway listening" line (the server is up, and the signal
/// handlers with it); returns the child, the rest of its logs, and the lines
/// read so far.
async fn spawn_listening(faktory_url: &str, extra: &[&str]) -> (Child, LogLines, Vec<String>) {
    let mut child = Command::new(BINARY)
        .args([
            "--faktory-url",
            faktory_url,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--shutdown-grace-ms",
            "1000",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("GATEWAY_LOG_FORMAT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn faktory-gateway");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next_line()
            .await
            .expect("read stdout")
            .expect("gateway exited before listening");
        let listening = line.contains("gateway listening");
        seen.push(line);
        if listening {
            return (child, lines, seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let server = common::faktory().await;
    let (mut child, _lines, seen) = spawn_listening(&server.url(), &["--log-format", "json"]).await;
    for line in &seen {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry["timestamp"].is_string() && entry["level"].is_string(),
            "{line}"
        );
    }
    let listening: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(listening["fields"]["message"], "gateway listening");
    assert_eq!(listening["level"], "INFO");
    child.kill().await.expect("kill the gateway");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let server = common::faktory().await;
    let (mut child, mut lines, _) = spawn_listening(&server.url(), &[]).await;
    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(killed.success());
    let mut saw_stop = false;
    while let Some(line) = lines.next_line().await.expect("read stdout") {
        saw_stop |= line.contains("gateway stopped");
    }
    let status = child.wait().await.expect("wait for the gateway");
    assert!(status.success(), "exit status {status}");
    assert!(saw_stop, "the gateway logged its clean stop");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_option_values_exit_nonzero_naming_the_variable() {
    let output = Command::new(BINARY)
        .env("FETCH_CONCURRENCY", "lots")
        .output()
        .await
        .expect("run faktory-gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FETCH_CONCURRENCY"), "{stderr}");
}

/// Runs `faktory-gateway health` with `args` and `env`; returns whether it
/// exited 0, and its stdout.
async fn health(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(BINARY)
        .arg("health")
        .args(args)
        .env_remove("GATEWAY_LISTEN")
        .env_remove("GATEWAY_TLS_CERT")
        .env_remove("GATEWAY_TLS_KEY")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run faktory-gateway health");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_zero_only_for_a_serving_gateway() {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &[]).await;
    let port = gateway.addr.port().to_string();

    let (ok, out) = health(&["--addr", &format!("http://{}", gateway.addr)], &[]).await;
    assert!(ok, "{out}");
    assert!(out.contains("SERVING"), "{out}");
    // As the Docker HEALTHCHECK runs it: the port of GATEWAY_LISTEN, with
    // the wildcard address meaning loopback.
    let listen = format!("0.0.0.0:{port}");
    let (ok, out) = health(&[], &[("GATEWAY_LISTEN", &listen)]).await;
    assert!(ok, "{out}");

    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = free.local_addr().expect("addr");
    drop(free);
    let (ok, out) = health(&["--addr", &format!("http://{closed}")], &[]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("UNREACHABLE"), "{out}");
    let (ok, out) = health(&["--listen", &closed.to_string()], &[]).await;
    assert!(!ok, "{out}");

    // Once the gateway has stopped, nothing answers.
    gateway.stop().await.expect("clean shutdown");
    let (ok, out) = health(&[], &[("GATEWAY_LISTEN", &listen)]).await;
    assert!(!ok, "{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_speaks_tls_when_the_gateway_has_a_certificate() {
    let dir = std::env::temp_dir().join(format!("fg-health-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));

    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &["--tls-cert", cert, "--tls-key", key]).await;
    let listen = format!("0.0.0.0:{}", gateway.addr.port());
    // The gateway's own environment: TLS on, its certificate trusted.
    let env = [
        ("GATEWAY_LISTEN", listen.as_str()),
        ("GATEWAY_TLS_CERT", cert),
        ("GATEWAY_TLS_KEY", key),
    ];
    let (ok, out) = health(&[], &env).await;
    assert!(ok, "{out}");
    assert!(out.starts_with("https://"), "{out}");
    // Plaintext against the TLS port fails.
    let (ok, out) = health(&["--addr", &format!("http://{}", gateway.addr)], &env).await;
    assert!(!ok, "{out}");
    // A certificate the gateway does not have is not trusted.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let other_path = dir.join("other.pem");
    std::fs::write(&other_path, other.cert.pem()).expect("write cert");
    let (ok, out) = health(&["--ca", other_path.to_str().expect("utf-8")], &env).await;
    assert!(!ok, "{out}");

    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The README's configuration table lists every option `--help` prints, with its environment
/// variable, so the docs cannot drift from the code.
#[test]
fn readme_documents_every_option() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_faktory-gateway"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8(help.stdout).expect("utf-8 help");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let mut checked = 0;
    for line in help.lines() {
        let Some(flag) = line
            .split_whitespace()
            .next()
            .filter(|word| word.starts_with("--") && !matches!(*word, "--help" | "--version"))
        else {
            continue;
        };
        assert!(
            readme.contains(&format!("| `{flag}` |")),
            "README.md's configuration table lacks {flag}"
        );
        checked += 1;
    }
    for env in help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
    {
        assert!(
            readme.contains(&format!("`{env}`")),
            "README.md's configuration table lacks {env}"
        );
    }
    assert!(checked > 20, "parsed only {checked} options from --help");
}
