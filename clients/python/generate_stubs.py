#!/usr/bin/env python3
"""Regenerates the gRPC stubs inside the package from the contract in ``proto/``.

The package ships ``faktory_gateway/v1/gateway_pb2.py``, ``gateway_pb2.pyi`` and
``gateway_pb2_grpc.py`` so that installing it needs no protoc. Run this after changing
``proto/faktory_gateway/v1/gateway.proto``, and commit what it writes:

    pip install grpcio-tools==1.75.1
    python3 clients/python/generate_stubs.py            # rewrite the stubs
    python3 clients/python/generate_stubs.py --check    # exit 1 if they are out of date (CI)

The grpcio-tools version is pinned because the generated code records it: stubs from 1.75.1
need grpcio >= 1.75.1 and protobuf >= 6.31.1 at run time (see ``pyproject.toml``), which every
supported Python (3.9+) can install. A newer grpcio-tools would raise those floors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.75.1"
HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO = Path("faktory_gateway") / "v1" / "gateway.proto"
GENERATED = ("gateway_pb2.py", "gateway_pb2.pyi", "gateway_pb2_grpc.py")
# The proto package faktory_gateway.v1 is this Python package's faktory_gateway.v1, so the
# generated imports (``from faktory_gateway.v1 import gateway_pb2``) work as generated.
OUT = HERE / "faktory_gateway" / "v1"


def generate(into: Path) -> None:
    from grpc_tools import protoc

    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={into}",
        f"--pyi_out={into}",
        f"--grpc_python_out={into}",
        str(PROTO_ROOT / PROTO),
    ])
    if status != 0:
        sys.exit(f"protoc failed on {PROTO_ROOT / PROTO} (exit {status})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 when the committed stubs differ")
    args = parser.parse_args()
    installed = version("grpcio-tools")
    if installed != GRPCIO_TOOLS_VERSION:
        sys.exit(f"grpcio-tools {installed} is installed; the stubs are generated with "
                 f"{GRPCIO_TOOLS_VERSION} (pip install grpcio-tools=={GRPCIO_TOOLS_VERSION})")
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        fresh = Path(scratch) / PROTO.parent
        stale = [name for name in GENERATED
                 if not (OUT / name).exists()
                 or (OUT / name).read_bytes() != (fresh / name).read_bytes()]
        if args.check:
            if stale:
                print(f"stubs out of date with {PROTO}: {', '.join(stale)}; "
                      f"run python3 clients/python/generate_stubs.py", file=sys.stderr)
                return 1
            print(f"stubs up to date with {PROTO}")
            return 0
        for name in stale:
            (OUT / name).write_bytes((fresh / name).read_bytes())
        print(f"{len(stale)} of {len(GENERATED)} stub files rewritten in {OUT.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
