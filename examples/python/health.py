#!/usr/bin/env python3
"""Asks a Faktory Gateway's standard gRPC health service (grpc.health.v1) whether it serves.

    python3 health.py --gateway http://127.0.0.1:7421            # overall health (service "")
    python3 health.py --service faktory_gateway.v1.Gateway --wait 30

Prints the status and exits 0 when it is SERVING; with ``--wait`` keeps asking until then.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faktory_gateway import connect
from faktory_gateway.settings import connection


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gateway", help="gateway URL (default: GATEWAY_URL)")
    p.add_argument("--service", default="", help='service name; "" means the whole server')
    p.add_argument("--wait", type=float, default=0.0, help="keep asking for this many seconds")
    args = p.parse_args()
    conn = connection(args.gateway, None, "GATEWAY_WORKER_TOKEN", None, None)
    stub = health_pb2_grpc.HealthStub(connect.sync_channel(conn, conn.gateways[0]))
    deadline = time.monotonic() + args.wait
    while True:
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=5,
                                  metadata=connect.metadata(conn.token))
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        except grpc.RpcError as error:
            status = f"{error.code().name}: {error.details()}"
        if status == "SERVING" or time.monotonic() >= deadline:
            print(f"{args.service or '(server)'}: {status}")
            return 0 if status == "SERVING" else 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
