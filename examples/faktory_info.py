#!/usr/bin/env python3
"""Asks a Faktory server (real or the test server) for INFO over a raw socket; used by the checks.

    python3 faktory_info.py tcp://127.0.0.1:7419                 # prints the INFO JSON
    python3 faktory_info.py tcp://127.0.0.1:7419 --wait-processed 1000 --timeout 30

``--wait-processed N`` polls until Faktory has processed (acked) at least N jobs and holds none
queued or reserved (with ``--allow-pending``: whatever else it holds), then prints the INFO JSON;
exits 1 if that does not happen in time.

``--take-all QUEUE --jids-out FILE`` FETCHes and ACKs every job of QUEUE, including scheduled
ones as they come due, until nothing is queued or scheduled; writes their jids to FILE.
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


class Client:
    """One plain Faktory connection: HI/HELLO, then one command at a time."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        if parsed.scheme != "tcp" or parsed.password:
            raise SystemExit("only tcp://host:port without a password is supported here")
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 7419), timeout=10)
        self.stream = self.sock.makefile("rwb")
        hi = read_reply(self.stream)
        if not hi.startswith(b"HI "):
            raise RuntimeError(f"expected HI, got {hi!r}")
        self.command(b'HELLO {"v":2}')

    def command(self, line: bytes) -> bytes:
        self.stream.write(line + b"\r\n")
        self.stream.flush()
        return read_reply(self.stream)

    def close(self) -> None:
        self.stream.write(b"END\r\n")
        self.stream.flush()
        self.sock.close()


def info(url: str) -> dict:
    client = Client(url)
    try:
        return json.loads(client.command(b"INFO"))
    finally:
        client.close()


def take_all(url: str, queue: str, timeout: float) -> list[str] | None:
    """FETCH + ACK everything in ``queue`` until nothing is queued or scheduled; None on timeout."""
    client = Client(url)
    jids: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            faktory = json.loads(client.command(b"INFO"))["faktory"]
            scheduled = faktory.get("tasks", {}).get("Scheduled", {}).get("size", 0)
            if faktory["total_enqueued"] == 0 and scheduled == 0:
                return jids
            job = client.command(b"FETCH " + queue.encode())
            if job:
                jid = json.loads(job)["jid"]
                client.command(b'ACK {"jid":' + json.dumps(jid).encode() + b"}")
                jids.append(jid)
        return None
    finally:
        client.close()


def settled(data: dict, processed: int, allow_pending: bool) -> bool:
    faktory = data["faktory"]
    if faktory["total_processed"] < processed:
        return False
    busy = faktory.get("tasks", {}).get("Busy", {}).get("size", 0)
    return allow_pending or (faktory["total_enqueued"] == 0 and busy == 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--wait-processed", type=int, default=None)
    p.add_argument("--allow-pending", action="store_true",
                   help="with --wait-processed: don't wait for the queues to empty")
    p.add_argument("--take-all", metavar="QUEUE")
    p.add_argument("--jids-out")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    if args.take_all:
        jids = take_all(args.url, args.take_all, args.timeout)
        if jids is None:
            print(f"{args.take_all}: jobs still queued or scheduled after {args.timeout}s",
                  file=sys.stderr)
            return 1
        if args.jids_out:
            with open(args.jids_out, "w") as out:
                out.writelines(jid + "\n" for jid in jids)
        print(json.dumps({"taken": len(jids)}))
        return 0
    if args.wait_processed is None:
        print(json.dumps(info(args.url)))
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        data = info(args.url)
        if settled(data, args.wait_processed, args.allow_pending):
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
