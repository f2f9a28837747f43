#!/usr/bin/env python3
"""An ``add`` worker on the faktory-gateway package (``pip install ./clients/python``).

Settings come from the environment: GATEWAY_URL, GATEWAY_WORKER_TOKEN, WORKER_CONCURRENCY,
WORKER_QUEUES, ... ``--record FILE`` appends "jid a" for every job run (the checks use it);
``--work-ms N`` makes each job sleep first, standing in for real work. Stops on SIGTERM/SIGINT
after draining; prints its counters as JSON and exits 0 when the drain was clean.
"""
import argparse, json, logging, sys, threading, time

from faktory_gateway import Worker, current_job

p = argparse.ArgumentParser()
p.add_argument("--record")
p.add_argument("--work-ms", type=float, default=0)
args = p.parse_args()
logging.basicConfig(level=logging.INFO, format="[worker] %(message)s")
record, lock = open(args.record, "a", buffering=1) if args.record else None, threading.Lock()
worker = Worker()


@worker.register("add")
def add(payload):
    if args.work_ms:
        time.sleep(args.work_ms / 1000)
    if record:
        with lock:
            record.write(f"{current_job().jid} {payload['a']}\n")
    return payload["a"] + payload["b"]


reason = worker.run()
if record:
    record.close()
print(json.dumps({"clean": reason.clean, **worker.stats()}), flush=True)
sys.exit(0 if reason.clean else 1)
