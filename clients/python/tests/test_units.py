"""Unit tests of the pure parts: settings, flow control, results, failover, failures."""

from __future__ import annotations

import pytest

from faktory_gateway import ConfigError
from faktory_gateway.flow import SAMPLE_PERIOD, FlowControl
from faktory_gateway.gateways import Backoff, Gateways
from faktory_gateway.job import failure
from faktory_gateway.results import Results
from faktory_gateway.settings import DEFAULT_GATEWAY_URL, connection, worker_settings

FLUSH = 0.005


def test_environment_fills_in_what_arguments_leave_out():
    env = {"GATEWAY_URL": " http://a:7421, https://b:7421 ,,", "GATEWAY_WORKER_TOKEN": "w",
           "WORKER_CONCURRENCY": "7", "WORKER_QUEUES": "critical, default",
           "WORKER_LABELS": "py,blue", "WORKER_MAX_PREFETCH": "0", "WORKER_ID": "me",
           "GATEWAY_TLS_DOMAIN": "gw.example", "GATEWAY_PRODUCER_TOKEN": "p"}
    s = worker_settings(env=env)
    assert s.connection.gateways == ["http://a:7421", "https://b:7421"]
    assert (s.connection.token, s.concurrency, s.max_prefetch, s.worker_id) == ("w", 7, 0, "me")
    assert (s.queues, s.labels) == (["critical", "default"], ["py", "blue"])
    assert s.connection.tls_domain == "gw.example"
    # Arguments win.
    s = worker_settings(gateway="http://c:1", concurrency=3, token="x", queues=["q"], env=env)
    assert (s.connection.gateways, s.concurrency, s.connection.token, s.queues) == \
        (["http://c:1"], 3, "x", ["q"])
    # The producer client reads its own token variable.
    assert connection(None, None, "GATEWAY_PRODUCER_TOKEN", None, None, env).token == "p"


def test_defaults():
    s = worker_settings(env={})
    assert s.connection.gateways == [DEFAULT_GATEWAY_URL]
    assert (s.concurrency, s.queues, s.labels, s.connection.token) == (10, ["default"], [], None)


@pytest.mark.parametrize("env, variable", [
    ({"WORKER_CONCURRENCY": "many"}, "WORKER_CONCURRENCY"),
    ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
    ({"WORKER_MAX_PREFETCH": "-1"}, "WORKER_MAX_PREFETCH"),
    ({"GATEWAY_URL": " , ,"}, "GATEWAY_URL"),
    ({"GATEWAY_TLS_CA": "/nonexistent/ca.pem"}, "GATEWAY_TLS_CA"),
])
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as error:
        worker_settings(env=env)
    assert error.value.name == variable


def test_bad_arguments_name_the_argument():
    with pytest.raises(ConfigError) as error:
        worker_settings(concurrency=0, env={"WORKER_CONCURRENCY": "5"})
    assert error.value.name == "concurrency"


def test_bad_urls_are_refused_by_the_worker():
    from faktory_gateway import Worker

    for url in ("ftp://x:1", "http://", "127.0.0.1:7421"):
        with pytest.raises(ConfigError):
            Worker(gateway=url)


def run_window_limited(flow: FlowControl, start: float, rtt: float, periods: int) -> float:
    """Every RTT the whole window finishes (the window limits throughput)."""
    now = start
    for _ in range(periods):
        flow.on_rtt(rtt)
        flow.on_completed(int(flow.window() * SAMPLE_PERIOD / rtt))
        now += SAMPLE_PERIOD
        flow.sample(now)
        flow.take_update()
    return now


def test_window_grows_past_the_latency_bound_up_to_the_cap():
    flow = FlowControl(50, 1000, FLUSH, 0.0)
    assert flow.window() == 50, "nothing measured: the window is the concurrency"
    flow.advertised(flow.window())
    run_window_limited(flow, 0.0, 0.050, 30)
    assert flow.window() == 1050


def test_slow_handlers_shrink_prefetch():
    flow = FlowControl(10, 20_000, FLUSH, 0.0)
    flow.advertised(flow.window())
    now = run_window_limited(flow, 0.0, 0.050, 20)
    assert flow.window() > 200
    for _ in range(100):  # 15 jobs/s
        flow.on_completed(3)
        now += SAMPLE_PERIOD
        flow.sample(now)
    assert flow.prefetch() == 2, "ceil(15/s x 56 ms x 2)"
    assert flow.take_update() == 12
    assert flow.excess(100, 0.5) == 0, "not waited long enough"
    assert flow.excess(100, 1.0) == 98


def test_gateway_maximum_caps_the_window():
    flow = FlowControl(10, 5, FLUSH, 0.0)
    flow.set_max_window(12)
    flow.advertised(10)
    run_window_limited(flow, 0.0, 0.050, 10)
    assert flow.window() == 12


def test_results_batch_and_are_kept_until_answered():
    results = Results(3, FLUSH)
    assert results.flush_deadline() is None
    results.push("a", 1.0)
    results.push("b", 1.001)
    assert results.flush_deadline() == pytest.approx(1.005)
    results.push(failure("c", ValueError("x"), 0), 1.002)
    assert results.flush_deadline() == 1.0, "count reached: flush now"
    messages = results.take_messages(1 << 20)
    assert [m.WhichOneof("kind") for m in messages] == ["acks", "fails"]
    assert results.done("a") == "a" and results.done("a") is None
    results.push("d", 2.0)
    again = results.requeue_unconfirmed(3.0)
    assert sorted(r if isinstance(r, str) else r.jid for r in again) == ["b", "c"]
    messages = results.take_messages(1 << 20)
    assert list(messages[0].acks.jids) == ["b", "d"], "earlier results go first"
    for jid in "bcd":
        assert results.done(jid) is not None
    assert results.is_settled()


def test_results_split_by_size():
    results = Results(1000, FLUSH)
    for i in range(100):
        results.push(f"jid-{i:04d}", 0.0)
    messages = results.take_messages(100)
    assert len(messages) > 5
    assert sum(len(m.acks.jids) for m in messages) == 100


def test_failover_moves_on_from_refusals_and_sticks_after_a_loss():
    gateways = Gateways(["http://a", "http://b", "http://c"], "worker-1", Backoff(0.1, 2.0))
    first = gateways.target()
    gateways.refused()
    second = gateways.target()
    assert second != first
    assert gateways.refused() <= 0.1, "an untried gateway is next: the backoff starts over"
    third = gateways.target()
    assert len({first, second, third}) == 3
    # All three failed: the delay grows now.
    assert gateways.refused() > 0.05
    gateways.opened()
    here = gateways.target()
    gateways.lost()
    assert gateways.target() == here, "a lost stream retries the same gateway once"
    gateways.drained()
    assert gateways.target() != here, "a drained gateway is left at once"


def test_workers_spread_over_the_gateways():
    urls = ["http://a", "http://b", "http://c"]
    starts = {Gateways(urls, f"worker-{i}", Backoff(0.1, 1)).target() for i in range(30)}
    assert starts == set(urls)


def test_backoff_grows_within_bounds():
    backoff = Backoff(0.1, 2.0)
    ceiling = 0.1
    for _ in range(10):
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
        ceiling = min(ceiling * 2, 2.0)
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def _inner():
    raise KeyError("missing")


def _outer():
    _inner()


def test_an_exception_becomes_a_failure_with_its_class_and_traceback():
    try:
        _outer()
    except KeyError as error:
        f = failure("j1", error, 10)
    assert (f.jid, f.errtype, f.message) == ("j1", "KeyError", "'missing'")
    assert "in _inner" in f.backtrace[0], "innermost frame first"
    assert "in _outer" in f.backtrace[1]
    assert 'raise KeyError("missing")' in f.backtrace[0]
    try:
        _outer()
    except KeyError as error:
        assert len(failure("j1", error, 1).backtrace) == 1, "no more than the job keeps"
