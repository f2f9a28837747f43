"""gRPC channels to a gateway: URL validation, TLS, message limits, HTTP/2 keepalive and the
bearer token. One place for the worker (``grpc.aio``) and the clients (sync and ``grpc.aio``)."""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlparse

import grpc
import grpc.aio

from .errors import ConfigError
from .settings import Connection


def target(url: str) -> tuple[str, bool]:
    """The gRPC target (``host:port``) of a gateway URL and whether it uses TLS.

    Raises :class:`ConfigError` unless the URL is ``http://host[:port]`` or
    ``https://host[:port]`` (ports default to 80 and 443, as in the Rust SDK).
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ConfigError("gateway", f"{url!r}: the scheme must be http:// or https://")
    if not parsed.hostname:
        raise ConfigError("gateway", f"{url!r}: no host")
    try:
        port = parsed.port
    except ValueError:
        raise ConfigError("gateway", f"{url!r}: invalid port") from None
    tls = parsed.scheme == "https"
    host = parsed.hostname
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{port or (443 if tls else 80)}", tls


def _options(conn: Connection) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", conn.max_message_bytes),
        ("grpc.max_send_message_length", conn.max_message_bytes),
        # HTTP/2 keepalive as in the Rust SDK; the Work stream's own heartbeats are what prove
        # the worker alive end to end (proxies answer HTTP/2 PINGs themselves).
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Reconnects are the worker's business (with its own backoff and failover), so a
        # channel should not sit in gRPC's backoff after the gateway comes back.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
    ]
    if conn.tls_domain:
        options.append(("grpc.ssl_target_name_override", conn.tls_domain))
    return options


def _credentials(conn: Connection) -> grpc.ChannelCredentials:
    # A caller's CA replaces the public roots, as in the Rust SDK.
    return grpc.ssl_channel_credentials(root_certificates=conn.tls_ca_pem)


def aio_channel(conn: Connection, url: str) -> grpc.aio.Channel:
    """An asyncio channel to the gateway at ``url`` (must run inside an event loop)."""
    address, tls = target(url)
    if tls or conn.tls_ca_pem:
        return grpc.aio.secure_channel(address, _credentials(conn), options=_options(conn))
    return grpc.aio.insecure_channel(address, options=_options(conn))


def sync_channel(conn: Connection, url: str) -> grpc.Channel:
    """A blocking channel to the gateway at ``url``."""
    address, tls = target(url)
    if tls or conn.tls_ca_pem:
        return grpc.secure_channel(address, _credentials(conn), options=_options(conn))
    return grpc.insecure_channel(address, options=_options(conn))


def metadata(token: Optional[str]) -> tuple[tuple[str, str], ...]:
    """The ``authorization: Bearer`` metadata for a token, or none."""
    return (("authorization", f"Bearer {token}"),) if token else ()
