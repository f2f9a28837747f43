#!/usr/bin/env python3
"""Checks the project's Faktory test server with an independent client: PyPI ``faktory``.

Against FAKTORY_URL (default tcp://127.0.0.1:7419): PUSH through the client, a FETCH + ACK round
trip, a FETCH on an empty queue (answers nothing after blocking), a FAIL of an unknown jid (real
Faktory answers "Job not found"), then the library's Worker processes pushed jobs, one of which
raises and is FAILed; INFO must count them. Closing line: "third-party-python: N passed, N failed".
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import faktory
from faktory._proto import Connection

# The library logs each failed task's traceback; the failing job here fails on purpose.
logging.getLogger("faktory").setLevel(logging.CRITICAL)

URL = os.environ.get("FAKTORY_URL", "tcp://127.0.0.1:7419")
results = {"passed": 0, "failed": 0}


def check(name: str, ok: bool, detail: str = "") -> None:
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{f' ({detail})' if detail else ''}", flush=True)


def command(conn: Connection, cmd: str, data=None) -> str:
    conn.reply(cmd, data)
    return next(conn.get_message())


def info() -> dict:
    conn = Connection(URL)
    conn.connect()
    try:
        return json.loads(command(conn, "INFO"))["faktory"]
    finally:
        conn.disconnect()


def main() -> None:
    before = info()

    with faktory.connection(URL) as client:
        check("PUSH is OK", client.queue("Echo", args=("hello", 1), queue="py-raw", jid="py-raw-1"))

    conn = Connection(URL)
    conn.connect()
    job = conn.fetch(["py-raw"])
    check("FETCH returns the pushed job",
          bool(job) and job["jid"] == "py-raw-1" and job["args"] == ["hello", 1], json.dumps(job))
    check("ACK of the fetched job is OK", command(conn, "ACK", {"jid": "py-raw-1"}) == "OK")
    started = time.monotonic()
    empty = conn.fetch(["py-empty"])
    check("FETCH on an empty queue answers nothing after blocking", empty is None,
          f"{time.monotonic() - started:.1f}s")
    answer = command(conn, "FAIL", {"jid": "no-such-jid-py", "errtype": "X", "message": "x"})
    check("FAIL of an unknown jid is an error", "not found" in answer.lower(), answer)
    conn.disconnect()

    sums: list[int] = []
    with faktory.connection(URL) as client:
        for n in range(1, 6):
            client.queue("add", args=(n, n), queue="py-work")
        client.queue("boom", queue="py-work", jid="py-boom-1", retry=3)

    def boom():
        raise RuntimeError("boom on purpose")

    worker = faktory.Worker(faktory=URL, queues=["py-work"], concurrency=2, use_threads=True)
    worker.register("add", lambda a, b: sums.append(a + b))
    worker.register("boom", boom)
    worker.faktory.connect(worker_id=worker.worker_id)
    worker._last_heartbeat = __import__("datetime").datetime.now()
    deadline = time.monotonic() + 30
    # Drive the library's own loop one tick at a time, until all 6 jobs have been reported.
    while time.monotonic() < deadline:
        worker.tick()
        after = info()
        if (len(sums) == 5 and after["total_failures"] - before["total_failures"] >= 1
                and not worker._pending):
            break
    worker.faktory.disconnect()
    worker.executor.shutdown(wait=True)

    after = info()
    check("Worker ran the 5 pushed add jobs", sorted(sums) == [2, 4, 6, 8, 10], str(sorted(sums)))
    # Real Faktory counts a FAIL as processed too (its store's Failure() bumps both counters).
    processed = after["total_processed"] - before["total_processed"]
    check("INFO counts every ACK and FAIL as processed", processed == 7, f"processed +{processed}")
    failures = after["total_failures"] - before["total_failures"]
    check("INFO counts the failure", failures == 1, f"failures +{failures}")
    retries = after.get("tasks", {}).get("Retries", {}).get("size")
    check("the failed job waits in the retry set", (retries or 0) >= 1, f"Retries.size {retries}")
    queued = after["queues"].get("py-work", 0)
    check("nothing is left in the worked queue", queued == 0, f"py-work {queued}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # report, then count as a failure
        print(f"check aborted: {error!r}", flush=True)
        results["failed"] += 1
    print(f"third-party-python: {results['passed']} passed, {results['failed']} failed")
    sys.exit(0 if results["failed"] == 0 else 1)
