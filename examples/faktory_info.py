#!/usr/bin/env python3
"""Asks a Faktory server (real or the test server) for INFO over a raw socket; used by the checks.

    python3 faktory_info.py tcp://127.0.0.1:7419                 # prints the INFO JSON
    python3 faktory_info.py tcp://127.0.0.1:7419 --wait-processed 1000 --timeout 30

``--wait-processed N`` polls until Faktory has processed (acked) at least N jobs and holds none
queued or reserved, then prints the INFO JSON; exits 1 if that does not happen in time.
Only the plain ``tcp://`` scheme without a password is supported: the checks need nothing more.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlparse


def read_line(stream) -> bytes:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by Faktory")
    return line[:-2]


def read_reply(stream) -> bytes:
    line = read_line(stream)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"Faktory error: {rest.decode()}")
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return b""
        data = stream.read(length + 2)
        return data[:-2]
    raise RuntimeError(f"unexpected reply {line!r}")


def info(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme != "tcp" or parsed.password:
        raise SystemExit("only tcp://host:port without a password is supported here")
    with socket.create_connection((parsed.hostname, parsed.port or 7419), timeout=10) as sock:
        stream = sock.makefile("rwb")
        hi = read_reply(stream)
        if not hi.startswith(b"HI "):
            raise RuntimeError(f"expected HI, got {hi!r}")
        stream.write(b'HELLO {"v":2}\r\n')
        stream.flush()
        read_reply(stream)
        stream.write(b"INFO\r\n")
        stream.flush()
        result = json.loads(read_reply(stream))
        stream.write(b"END\r\n")
        stream.flush()
        return result


def settled(data: dict, processed: int) -> bool:
    faktory = data["faktory"]
    busy = faktory.get("tasks", {}).get("Busy", {}).get("size", 0)
    return faktory["total_processed"] >= processed and faktory["total_enqueued"] == 0 and busy == 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--wait-processed", type=int, default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    if args.wait_processed is None:
        print(json.dumps(info(args.url)))
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        data = info(args.url)
        if settled(data, args.wait_processed):
            print(json.dumps(data["faktory"]))
            return 0
        if time.monotonic() > deadline:
            print(json.dumps(data["faktory"]))
            print(f"Faktory did not settle: wanted processed >= {args.wait_processed}, "
                  "nothing queued or reserved", file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
