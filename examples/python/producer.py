#!/usr/bin/env python3
"""Pushes jobs to a Faktory Gateway with stock grpcio stubs.

Sends ``Push`` calls of up to ``--batch`` jobs, with up to ``--parallel`` calls in flight, and
checks the one result per job that each call returns. Jobs are ``add`` jobs (args
``[{"a": i, "b": i + 1}]``, as the Rust example worker expects)
unless ``--jobtype`` says otherwise; the gateway generates the jids, which are printed or written
to ``--jids-out``. Exits 1 if any job was not accepted.

    python3 producer.py --gateway http://127.0.0.1:7421 --count 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import gateway_stubs

pb, pb_grpc = gateway_stubs.load()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gateway_stubs.add_connection_args(p, "GATEWAY_PRODUCER_TOKEN")
    p.add_argument("--count", type=int, default=1000, help="jobs to push")
    p.add_argument("--batch", type=int, default=500, help="jobs per Push call")
    p.add_argument("--parallel", type=int, default=4, help="Push calls in flight")
    p.add_argument("--queue", default="default")
    p.add_argument("--jobtype", default="add")
    p.add_argument("--retry", type=int, default=None, help="Faktory retry count (default: Faktory's)")
    p.add_argument("--jids-out", help="write the accepted jids here, one per line")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of each Push call, seconds")
    return p.parse_args()


def make_job(args: argparse.Namespace, i: int):
    job = pb.Job(
        jobtype=args.jobtype,
        queue=args.queue,
        # JSON travels as UTF-8 text in bytes fields, exactly as Faktory stores it.
        args=json.dumps([{"a": i, "b": i + 1}]).encode(),
        custom=json.dumps({"source": "python-producer"}).encode(),
    )
    if args.retry is not None:
        job.retry = args.retry
    return job


def main() -> int:
    args = parse_args()
    stub = pb_grpc.GatewayStub(gateway_stubs.channel(args.gateway))
    metadata = gateway_stubs.auth_metadata(args.token)

    def push(start: int):
        jobs = [make_job(args, i) for i in range(start, min(start + args.batch, args.count))]
        response = stub.Push(pb.PushRequest(jobs=jobs), timeout=args.timeout, metadata=metadata)
        if len(response.results) != len(jobs):
            raise RuntimeError(f"{len(jobs)} jobs sent, {len(response.results)} results")
        return response.results

    started = time.monotonic()
    accepted: list[str] = []
    problems: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        for results in pool.map(push, range(0, args.count, args.batch)):
            for result in results:
                if result.status == pb.PUSH_STATUS_ACCEPTED:
                    accepted.append(result.jid)
                else:
                    status = pb.PushStatus.Name(result.status)
                    problems[status] = problems.get(status, 0) + 1
                    print(f"job {result.jid or '?'}: {status} {result.field} {result.reason}",
                          file=sys.stderr)
    elapsed = time.monotonic() - started

    if args.jids_out:
        with open(args.jids_out, "w") as out:
            out.writelines(jid + "\n" for jid in accepted)
    summary = {"pushed": args.count, "accepted": len(accepted), "not_accepted": problems,
               "seconds": round(elapsed, 3), "jobs_per_second": round(args.count / max(elapsed, 1e-9))}
    print(json.dumps(summary))
    return 0 if len(accepted) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
