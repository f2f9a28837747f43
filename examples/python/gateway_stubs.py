"""Stock grpcio stubs for faktory_gateway.v1, generated from the repository's .proto.

The stubs are generated with grpcio-tools into ``gen/`` (git-ignored) the first time they are
needed, and again whenever the .proto is newer than them. Nothing here is project code: any
program that can run ``grpc_tools.protoc`` gets the same modules.

Run ``python3 gateway_stubs.py`` to generate them ahead of time (useful before starting several
programs at once). Also holds the two helpers both examples share: the gRPC target for a
gateway URL and the bearer-token metadata.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO_FILE = PROTO_ROOT / "faktory_gateway" / "v1" / "gateway.proto"
GEN = HERE / "gen"
GENERATED = ("gateway_pb2.py", "gateway_pb2.pyi", "gateway_pb2_grpc.py")

DEFAULT_GATEWAY_URL = "http://127.0.0.1:7421"
# Both ends must agree: the worker announces this in Hello.max_message_bytes.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _stale() -> bool:
    out = GEN / "faktory_gateway" / "v1"
    proto_mtime = PROTO_FILE.stat().st_mtime
    return any(
        not (out / name).exists() or (out / name).stat().st_mtime < proto_mtime
        for name in GENERATED
    )


def generate() -> None:
    """Runs protoc (from grpcio-tools) on the gateway contract if the stubs are missing or stale."""
    if not _stale():
        return
    from grpc_tools import protoc  # imported late: only needed when (re)generating

    # Generate into a scratch folder, then move each file into place atomically, so a second
    # program starting at the same moment never imports a half-written module.
    GEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=GEN) as scratch:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                str(PROTO_FILE),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {PROTO_FILE} (exit {status})")
        out = GEN / "faktory_gateway" / "v1"
        out.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            os.replace(Path(scratch) / "faktory_gateway" / "v1" / name, out / name)
    shutil.rmtree(GEN / "__pycache__", ignore_errors=True)


def load():
    """Returns the generated ``(gateway_pb2, gateway_pb2_grpc)`` modules."""
    generate()
    if str(GEN) not in sys.path:
        sys.path.insert(0, str(GEN))
    from faktory_gateway.v1 import gateway_pb2, gateway_pb2_grpc

    return gateway_pb2, gateway_pb2_grpc


def channel(url: str):
    """Opens a channel to a gateway URL: ``http://host:port`` (plaintext) or ``https://...`` (TLS).

    A bare ``host:port`` means plaintext.
    """
    import grpc

    if "://" not in url:
        url = "http://" + url
    parsed = urlparse(url)
    if not parsed.hostname:
        raise SystemExit(f"invalid gateway URL {url!r}")
    target = f"{parsed.hostname}:{parsed.port or 7421}"
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # HTTP/2 keepalive; the application heartbeats on the Work stream are what prove liveness.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    if parsed.scheme == "https":
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    if parsed.scheme != "http":
        raise SystemExit(f"gateway URL {url!r}: scheme must be http or https")
    return grpc.insecure_channel(target, options=options)


def add_connection_args(parser, token_env: str) -> None:
    """Adds ``--gateway`` (env GATEWAY_URL) and ``--token`` (env ``token_env``) to a parser."""
    parser.add_argument("--gateway", default=os.environ.get("GATEWAY_URL", DEFAULT_GATEWAY_URL),
                        help="gateway URL, http://host:port or https://host:port (env GATEWAY_URL)")
    parser.add_argument("--token", default=os.environ.get(token_env),
                        help=f"bearer token for the gateway (env {token_env})")


def auth_metadata(token: str | None):
    """The ``authorization: Bearer`` metadata for a gateway token, or none."""
    return (("authorization", f"Bearer {token}"),) if token else ()


if __name__ == "__main__":
    generate()
    print(f"stubs in {GEN / 'faktory_gateway' / 'v1'}")
