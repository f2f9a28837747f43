"""The worker against a real gateway and the Faktory test server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import threading
import time

import pytest

from conftest import Process, wait_for
from ports import CuttableProxy, free_port
from faktory_gateway import Client, Worker, WorkerRefused, current_job


def push_adds(client: Client, n: int, jobtype: str = "add", **options) -> list[str]:
    results = client.push_many({"jobtype": jobtype, "args": [{"a": i, "b": i}], **options}
                               for i in range(n))
    assert all(r.accepted for r in results), results[:3]
    return [r.jid for r in results]


def test_plain_and_async_handlers_each_run_every_job_once(faktory, gateway, run_worker):
    seen: list[tuple[str, int]] = []
    worker = Worker(gateway=gateway.url, concurrency=8)

    @worker.register("add")
    def add(payload):
        seen.append((current_job().jid, payload["a"]))

    @worker.register("async_add")
    async def async_add(payload):
        await asyncio.sleep(0.001)
        seen.append((current_job().jid, payload["a"]))

    with Client(gateway.url) as client:
        jids = push_adds(client, 300) + push_adds(client, 300, "async_add")
    running = run_worker(worker)
    faktory.settled(600)
    reason = running.stop()
    assert reason.clean
    assert sorted(j for j, _ in seen) == sorted(jids), "every job ran exactly once"
    stats = worker.stats()
    assert (stats["succeeded"], stats["settled"], stats["unconfirmed"]) == (600, 600, 0)


def test_a_handler_exception_fails_the_job_in_faktory(faktory, gateway, run_worker):
    worker = Worker(gateway=gateway.url, concurrency=2)

    @worker.register("boom")
    def boom(n):
        raise ValueError(f"no {n}")

    with Client(gateway.url) as client:
        assert client.push("boom", 1, retry=0, backtrace=5).accepted
    before = faktory.info()["total_failures"]
    running = run_worker(worker)
    wait_for(lambda: faktory.info()["total_failures"] == before + 1, 30, "the FAIL at Faktory")
    wait_for(lambda: worker.stats().get("settled") == 1, 10, "the fail to be settled")
    assert running.stop().clean
    assert worker.stats()["failed"] == 1


def test_a_bad_token_is_fatal_and_the_right_one_from_the_environment_works(
        faktory, start_gateway, run_worker, monkeypatch):
    gw = start_gateway("--worker-token", "sesame", "--producer-token", "push-me")
    worker = Worker(gateway=gw.url, token="wrong")
    worker.register("add", lambda payload: None)
    with pytest.raises(WorkerRefused) as refused:
        asyncio.run(asyncio.wait_for(worker.run_async(), 20))
    assert refused.value.code == "UNAUTHENTICATED"

    monkeypatch.setenv("GATEWAY_WORKER_TOKEN", "sesame")
    monkeypatch.setenv("GATEWAY_PRODUCER_TOKEN", "push-me")
    worker = Worker(gateway=gw.url)
    worker.register("add", lambda payload: None)
    with Client(gw.url) as client:
        push_adds(client, 10)
    running = run_worker(worker)
    faktory.settled(10)
    assert running.stop().clean


def test_fails_over_to_the_next_gateway(faktory, gateway, run_worker):
    dead = f"http://127.0.0.1:{free_port()}"
    # Whichever the worker id picks first, the dead one is tried at some point or not at all;
    # both orders must end on the live gateway.
    for worker_id in ("w-a", "w-b", "w-c"):
        worker = Worker(gateway=f"{dead},{gateway.url}", worker_id=worker_id, concurrency=2)
        worker.register("add", lambda payload: None)
        processed = faktory.info()["total_processed"]
        with Client(gateway.url) as client:
            push_adds(client, 5)
        running = run_worker(worker)
        faktory.settled(processed + 5)
        assert running.stop().clean


def test_gateway_killed_and_restarted_under_the_worker_loses_no_job(faktory, gateway, run_worker):
    done: list[str] = []
    lock = threading.Lock()
    worker = Worker(gateway=gateway.url, concurrency=4, max_prefetch=4)

    @worker.register("slow")
    def slow(payload):
        time.sleep(0.4)
        with lock:
            done.append(current_job().jid)

    with Client(gateway.url) as client:
        jids = push_adds(client, 16, "slow")
    running = run_worker(worker)
    wait_for(lambda: worker.stats().get("started", 0) >= 4, 20, "jobs to start")
    gateway.restart(pause=0.6)  # the running jobs finish while no gateway is up
    faktory.settled(16)
    assert running.stop().clean
    assert sorted(done) == sorted(jids), "every job ran exactly once"
    stats = worker.stats()
    assert stats["sessions"] >= 2 and stats["unconfirmed"] == 0


def test_jobs_held_across_a_broken_stream_stay_with_the_worker(faktory, gateway, run_worker):
    """After a cut the worker's hello lists what it holds: the gateway keeps those jobs for it
    instead of redelivering them to the other worker waiting for jobs."""
    runs: list[tuple[str, str]] = []
    proxy = CuttableProxy(gateway.port)

    def worker_named(name: str, url: str) -> Worker:
        worker = Worker(gateway=url, concurrency=4, max_prefetch=4, worker_id=name)

        @worker.register("slow")
        def slow(payload):
            time.sleep(1.2)  # two rounds of these outlast the gateway's reconnect grace (1 s)
            runs.append((name, current_job().jid))

        return worker

    try:
        far = worker_named("far", f"http://127.0.0.1:{proxy.port}")
        with Client(gateway.url) as client:
            jids = push_adds(client, 8, "slow")
        running_far = run_worker(far)
        wait_for(lambda: far.stats().get("delivered", 0) >= 8, 20, "all jobs at the far worker")
        near = worker_named("near", gateway.url)
        running_near = run_worker(near)
        wait_for(lambda: near.stats().get("sessions") == 1, 20, "the near worker's stream")
        proxy.cut()
        faktory.settled(8)
        assert running_far.stop().clean and running_near.stop().clean
    finally:
        proxy.close()
    assert sorted(jid for _, jid in runs) == sorted(jids), "every job ran exactly once"
    assert {name for name, _ in runs} == {"far"}, "nothing held by the far worker moved"
    assert far.stats()["sessions"] >= 2


def test_results_unconfirmed_when_the_gateway_dies_are_sent_again(faktory, gateway, run_worker):
    done: list[str] = []
    worker = Worker(gateway=gateway.url, concurrency=4, max_prefetch=0)

    @worker.register("slow")
    def slow(payload):
        time.sleep(0.5)
        done.append(current_job().jid)

    with Client(gateway.url) as client:
        jids = push_adds(client, 8, "slow")
    running = run_worker(worker)
    wait_for(lambda: worker.stats().get("started", 0) >= 4, 20, "four jobs to start")
    # Frozen, the gateway reads none of the acks the four jobs send when they finish, and
    # settles none; then it dies. The worker must send them again to the next gateway.
    gateway.freeze()
    wait_for(lambda: worker.stats()["succeeded"] >= 4, 20, "the four jobs to finish")
    time.sleep(0.2)
    gateway.restart(pause=0.2)
    faktory.settled(8)
    assert running.stop().clean
    stats = worker.stats()
    assert stats["resent"] >= 4, stats
    assert stats["settled"] == 8 and sorted(done) == sorted(jids)


def test_heartbeats_keep_an_idle_stream_open(faktory, start_gateway, run_worker):
    gw = start_gateway("--heartbeat-interval-ms", "200", "--heartbeat-timeout-ms", "1000")
    worker = Worker(gateway=gw.url, concurrency=2)
    worker.register("add", lambda payload: None)
    running = run_worker(worker)
    wait_for(lambda: worker.stats().get("sessions") == 1, 20, "the stream to open")
    time.sleep(3)  # three heartbeat timeouts with no job
    with Client(gw.url) as client:
        push_adds(client, 5)
    faktory.settled(5)
    assert running.stop().clean
    assert worker.stats()["sessions"] == 1, "the gateway never found the stream silent"
    assert worker.stats()["rtt_ms"] is not None, "pings were answered"


WORKER_SCRIPT = textwrap.dedent("""
    import sys, time
    from faktory_gateway import Worker, current_job
    worker = Worker(concurrency=4)
    @worker.register("slow")
    def slow(payload):
        time.sleep(0.2)
        with open(sys.argv[1], "a") as f:
            f.write(current_job().jid + "\\n")
    reason = worker.run()
    print("stopped", reason, worker.stats(), flush=True)
    sys.exit(0 if reason.clean else 1)
""")


def start_script_worker(tmp_path, gateway, name: str) -> tuple[Process, object]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    done = tmp_path / f"{name}.done"
    env = {**os.environ, "GATEWAY_URL": gateway.url, "PYTHONUNBUFFERED": "1"}
    return Process([sys.executable, script, done], tmp_path / f"{name}.log", env=env), done


def read_lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def push_and_start_first_worker(tmp_path, gateway):
    """Pushes 40 slow jobs and starts a worker script; returns once it finished a few."""
    with Client(gateway.url) as client:
        jids = push_adds(client, 40, "slow")
    first, first_done = start_script_worker(tmp_path, gateway, "first")
    wait_for(lambda: len(read_lines(first_done)) >= 4, 30, "the first worker to finish jobs")
    return jids, first, first_done


def test_a_worker_killed_mid_run_loses_no_job(faktory, gateway, tmp_path):
    jids, first, first_done = push_and_start_first_worker(tmp_path, gateway)
    first.kill(signal.SIGKILL)
    first.wait(10)
    second, second_done = start_script_worker(tmp_path, gateway, "second")
    try:
        faktory.settled(40)
    finally:
        second.stop()
    ran = read_lines(first_done) + read_lines(second_done)
    assert set(ran) == set(jids), "every job ran (those the killed worker held, again)"
    assert second.proc.returncode == 0, second.output()


def test_sigterm_drains_running_jobs_and_gives_back_the_rest(faktory, gateway, tmp_path):
    jids, first, first_done = push_and_start_first_worker(tmp_path, gateway)
    first.kill(signal.SIGTERM)
    assert first.wait(30) == 0, first.output()
    assert "clean=True" in first.output()
    drained = read_lines(first_done)
    assert len(drained) < 40, "the drain released unstarted jobs"
    second, second_done = start_script_worker(tmp_path, gateway, "second")
    try:
        faktory.settled(40)
    finally:
        second.stop()
    ran = drained + read_lines(second_done)
    assert sorted(ran) == sorted(jids), "each job ran once: finished by the first or released"
