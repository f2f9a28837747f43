#!/usr/bin/env python3
"""Pushes ``add`` jobs (args ``[{"a": i, "b": i + 1}]``) with the faktory-gateway package.

``--count`` jobs in ``Push`` calls of ``--batch``, ``--parallel`` calls at once; GATEWAY_URL and
GATEWAY_PRODUCER_TOKEN from the environment. Writes the accepted jids to ``--jids-out``,
prints a JSON summary, exits 1 unless every job was accepted.
"""
import argparse, json, sys, time
from concurrent.futures import ThreadPoolExecutor

from faktory_gateway import Client

p = argparse.ArgumentParser()
p.add_argument("--gateway")
p.add_argument("--count", type=int, default=1000)
p.add_argument("--batch", type=int, default=500)
p.add_argument("--parallel", type=int, default=4)
p.add_argument("--queue", default="default")
p.add_argument("--jids-out")
args = p.parse_args()
client = Client(args.gateway)


def push(start):
    return client.push_many({"jobtype": "add", "args": [{"a": i, "b": i + 1}], "queue": args.queue,
                             "custom": {"source": "python-producer"}}
                            for i in range(start, min(start + args.batch, args.count)))


started = time.monotonic()
with ThreadPoolExecutor(args.parallel) as pool:
    results = [r for batch in pool.map(push, range(0, args.count, args.batch)) for r in batch]
accepted = [r.jid for r in results if r.accepted]
for r in results:
    if not r.accepted:
        print(f"job {r.jid or '?'}: {r.status} {r.field} {r.reason}", file=sys.stderr)
if args.jids_out:
    with open(args.jids_out, "w") as out:
        out.writelines(jid + "\n" for jid in accepted)
seconds = time.monotonic() - started
print(json.dumps({"pushed": args.count, "accepted": len(accepted), "seconds": round(seconds, 3),
                  "jobs_per_second": round(args.count / max(seconds, 1e-9))}))
sys.exit(0 if len(accepted) == args.count else 1)
