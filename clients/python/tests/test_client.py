"""The producer clients against a real gateway and the Faktory test server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from conftest import wait_for
from faktory_gateway import AsyncClient, Client, PushError, Worker, current_job


def test_push_options_and_one_result_per_job(faktory, gateway):
    with Client(gateway.url) as client:
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        scheduled = client.push("add", 1, 2, queue="py-later", at=later, retry=3,
                                custom={"trace": "t1"})
        assert scheduled.accepted and len(scheduled.jid) >= 8
        results = client.push_many([
            {"jobtype": "add", "args": [1, 2], "queue": "py-now"},
            {"jobtype": "add", "args": [3], "queue": "not a queue!"},
            {"jobtype": "add", "args": [4], "jid": "my-own-jid-1"},
        ])
    assert [r.status for r in results] == ["accepted", "invalid", "accepted"]
    assert results[1].field == "queue" and results[1].reason
    assert results[2].jid == "my-own-jid-1"
    info = faktory.info()
    assert info["tasks"]["Scheduled"]["size"] == 1
    assert info["total_enqueued"] == 2


def test_whole_call_errors_raise(faktory, start_gateway):
    gw = start_gateway("--producer-token", "right")
    with Client(gw.url, token="wrong") as client:
        try:
            client.push("add", 1)
        except PushError as error:
            assert error.code == "UNAUTHENTICATED"
        else:
            raise AssertionError("a wrong token was accepted")
    with Client(gw.url, token="right") as client:
        assert client.push("add", 1).accepted


def test_handlers_push_follow_up_jobs_with_either_client(faktory, gateway, run_worker):
    seen = []
    worker = Worker(gateway=gateway.url, concurrency=4)
    client = Client(gateway.url)

    @worker.register("first")
    def first(n):
        assert client.push("second", n + 1).accepted

    @worker.register("async_first")
    async def async_first(n):
        async with AsyncClient(gateway.url) as aclient:
            assert (await aclient.push("second", n + 1)).accepted

    @worker.register("second")
    def second(n):
        seen.append((current_job().jobtype, n))

    client.push_many([{"jobtype": "first", "args": [1]}, {"jobtype": "async_first", "args": [10]}])
    running = run_worker(worker)
    wait_for(lambda: len(seen) == 2, 30, "the follow-up jobs")
    faktory.settled(4)
    assert running.stop().clean
    client.close()
    assert sorted(seen) == [("second", 2), ("second", 11)]


def test_async_client_push_many(faktory, gateway):
    async def main():
        async with AsyncClient(gateway.url) as client:
            return await client.push_many({"jobtype": "add", "args": [i]} for i in range(2500))

    results = asyncio.run(main())
    assert len(results) == 2500 and all(r.accepted for r in results)
    assert len({r.jid for r in results}) == 2500
    assert faktory.info()["total_enqueued"] == 2500
