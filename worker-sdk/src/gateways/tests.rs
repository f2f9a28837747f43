use std::time::Duration;

use super::*;

fn settings(urls: &[&str], worker_id: &str) -> Arc<Settings> {
    Arc::new(Settings {
        gateways: urls.iter().map(|u| u.to_string()).collect(),
        token: None,
        tls: Default::default(),
        worker_id: worker_id.into(),
        hostname: "test".into(),
        labels: Vec::new(),
        queues: vec!["default".into()],
        concurrency: 1,
        max_prefetch: 0,
        shutdown_timeout: Duration::from_secs(1),
        deadline_margin: Duration::from_secs(1),
        max_message_bytes: 1 << 20,
        flush_count: 1,
        flush_delay: Duration::from_millis(1),
        heartbeat_interval: Duration::from_secs(1),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(5),
    })
}

const THREE: [&str; 3] = [
    "http://10.0.0.1:1",
    "http://10.0.0.2:1",
    "http://10.0.0.3:1",
];

async fn current(gateways: &mut Gateways) -> String {
    gateways.target().await.to_string()
}

#[tokio::test]
async fn workers_start_at_different_gateways_by_id() {
    let mut starts = std::collections::HashMap::<String, usize>::new();
    for i in 0..300 {
        let mut gateways = Gateways::new(settings(&THREE, &format!("host-{i}-worker"))).unwrap();
        *starts.entry(current(&mut gateways).await).or_default() += 1;
    }
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(
        starts.values().all(|n| (60..=140).contains(n)),
        "{starts:?}"
    );
}

#[tokio::test]
async fn refused_moves_on_with_a_short_delay_until_every_gateway_was_tried() {
    let mut gateways = Gateways::new(settings(&THREE, "w")).unwrap();
    let first = current(&mut gateways).await;
    let mut seen = vec![first.clone()];
    for _ in 0..2 {
        let delay = gateways.refused();
        assert!(delay <= Duration::from_millis(100), "{delay:?}");
        seen.push(current(&mut gateways).await);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each gateway tried once: {seen:?}");
    // All tried: back to the first, and now the delay grows.
    let mut delays = Vec::new();
    for _ in 0..6 {
        delays.push(gateways.refused());
    }
    assert!(delays[5] > Duration::from_millis(200), "{delays:?}");
    assert!(
        delays.iter().all(|d| *d <= Duration::from_secs(5)),
        "{delays:?}"
    );
}

#[tokio::test]
async fn a_lost_stream_retries_the_same_gateway_once_then_moves_on() {
    let mut gateways = Gateways::new(settings(&THREE, "w")).unwrap();
    let first = current(&mut gateways).await;
    gateways.opened();
    gateways.lost();
    assert_eq!(current(&mut gateways).await, first, "sticky after a loss");
    let delay = gateways.refused();
    assert!(
        delay <= Duration::from_millis(100),
        "reset for an untried one: {delay:?}"
    );
    assert_ne!(
        current(&mut gateways).await,
        first,
        "moved on after the retry failed"
    );
}

#[tokio::test]
async fn a_stream_that_reopens_after_a_loss_stays() {
    let mut gateways = Gateways::new(settings(&THREE, "w")).unwrap();
    let first = current(&mut gateways).await;
    for _ in 0..3 {
        gateways.opened();
        gateways.lost();
        assert_eq!(current(&mut gateways).await, first);
    }
}

#[tokio::test]
async fn a_drain_moves_to_the_next_gateway_at_once() {
    let mut gateways = Gateways::new(settings(&THREE, "w")).unwrap();
    let first = current(&mut gateways).await;
    gateways.opened();
    let delay = gateways.drained();
    assert!(delay <= Duration::from_millis(100), "{delay:?}");
    assert_ne!(current(&mut gateways).await, first);
}

#[tokio::test]
async fn after_a_loss_and_a_move_the_other_gateways_before_the_start_are_untried() {
    // On the last gateway of a round, moving on wraps to the first, which was
    // not tried since the stream opened: the delay must stay short.
    let mut gateways = Gateways::new(settings(&THREE, "w")).unwrap();
    gateways.target().await;
    gateways.refused();
    gateways.refused();
    let last = current(&mut gateways).await;
    gateways.opened();
    gateways.lost();
    assert_eq!(current(&mut gateways).await, last);
    let delay = gateways.refused();
    assert!(delay <= Duration::from_millis(100), "{delay:?}");
    assert_ne!(current(&mut gateways).await, last);
}

#[tokio::test]
async fn a_host_name_counts_once_per_address_and_keeps_its_url() {
    let mut gateways = Gateways::new(settings(&["http://localhost:7421"], "w")).unwrap();
    let target = gateways.target().await;
    let addr = target.addr.expect("localhost resolves");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(addr.port(), 7421);
    assert_eq!(target.url, "http://localhost:7421");
    let dialled = target.endpoint.uri().authority().map(|a| a.to_string());
    assert_eq!(dialled, Some(addr.to_string()), "the address is dialled");
}

#[test]
fn no_url_or_a_bad_url_is_a_clear_error() {
    let error = Gateways::new(settings(&[], "w")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid setting gateways: no gateway URL given"
    );
    for (url, reason) in [
        ("gateway:7421", "the scheme must be http:// or https://"),
        (
            "ftp://gateway:7421",
            "the scheme must be http:// or https://",
        ),
        ("http://", "not a URL"),
        ("not a url", "not a URL"),
    ] {
        let error = Gateways::new(settings(&[url], "w")).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("invalid setting gateway: ")
                && message.contains(reason)
                && message.contains(url),
            "{url}: {message}"
        );
    }
}
