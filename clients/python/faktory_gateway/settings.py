"""Resolved settings: constructor arguments, else environment variables, else defaults.

The variables are the Rust SDK's (``worker-sdk``): ``GATEWAY_URL`` (one URL or a
comma-separated list), ``GATEWAY_WORKER_TOKEN``, ``GATEWAY_PRODUCER_TOKEN``,
``GATEWAY_TLS_CA`` (path to a CA PEM), ``GATEWAY_TLS_DOMAIN``, ``WORKER_CONCURRENCY``,
``WORKER_QUEUES``, ``WORKER_LABELS``, ``WORKER_MAX_PREFETCH``, ``WORKER_ID``. A bad value raises
:class:`~faktory_gateway.ConfigError` naming the variable.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

from .errors import ConfigError

DEFAULT_GATEWAY_URL = "http://127.0.0.1:7421"
#: Handler slots when neither ``concurrency=`` nor ``WORKER_CONCURRENCY`` is given.
DEFAULT_CONCURRENCY = 10
#: Cap on prefetched jobs (the gateway's default largest window); the prefetch itself is sized
#: from the measured rate x round trip, see ``flow.py``.
DEFAULT_MAX_PREFETCH = 20_000
#: Largest message accepted from (and sent to) the gateway.
DEFAULT_MAX_MESSAGE_BYTES = 8 << 20

Urls = Union[str, Sequence[str], None]


def split_list(value: str) -> list[str]:
    """Splits a comma-separated value; blanks around and between the commas are ignored."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _urls(given: Urls, env: Mapping[str, str]) -> list[str]:
    if given is None:
        value = env.get("GATEWAY_URL", "")
        if not value.strip():
            return [DEFAULT_GATEWAY_URL]
        urls = split_list(value)
        if not urls:
            raise ConfigError("GATEWAY_URL", f"{value!r} names no gateway URL")
        return urls
    urls = split_list(given) if isinstance(given, str) else [u.strip() for u in given if u.strip()]
    if not urls:
        raise ConfigError("gateway", f"{given!r} names no gateway URL")
    return urls


def _positive_int(given: Optional[int], argument: str, name: str, env: Mapping[str, str],
                  default: int, allow_zero: bool = False) -> int:
    if given is not None:
        value, source = given, argument
    elif env.get(name, "").strip():
        source = name
        try:
            value = int(env[name].strip())
        except ValueError:
            raise ConfigError(name, f"{env[name]!r} is not an integer") from None
    else:
        return default
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(source, f"{value!r} is not a {'non-negative' if allow_zero else 'positive'} integer")
    return value


def _text(given: Optional[str], name: str, env: Mapping[str, str]) -> Optional[str]:
    if given is not None:
        return given or None
    return env.get(name, "").strip() or None


@dataclass(frozen=True)
class Connection:
    """Where and how to reach the gateways."""

    gateways: list[str]
    token: Optional[str] = None
    tls_ca_pem: Optional[bytes] = None
    tls_domain: Optional[str] = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


def connection(gateway: Urls, token: Optional[str], token_variable: str, tls_ca: Optional[str],
               tls_domain: Optional[str], env: Optional[Mapping[str, str]] = None) -> Connection:
    """Resolves the connection settings shared by the worker and the client."""
    env = os.environ if env is None else env
    ca_path = _text(tls_ca, "GATEWAY_TLS_CA", env)
    pem = None
    if ca_path:
        try:
            with open(ca_path, "rb") as f:
                pem = f.read()
        except OSError as error:
            raise ConfigError("GATEWAY_TLS_CA" if tls_ca is None else "tls_ca",
                              f"cannot read {ca_path!r}: {error}") from error
    return Connection(
        gateways=_urls(gateway, env),
        token=_text(token, token_variable, env),
        tls_ca_pem=pem,
        tls_domain=_text(tls_domain, "GATEWAY_TLS_DOMAIN", env),
    )


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a running worker needs to know."""

    connection: Connection
    worker_id: str
    hostname: str
    labels: list[str]
    queues: list[str]
    concurrency: int
    max_prefetch: int
    shutdown_timeout: float
    flush_count: int = 100
    flush_delay: float = 0.005
    heartbeat_interval: float = 5.0
    reconnect_min: float = 0.05
    reconnect_max: float = 5.0


def worker_settings(*, gateway: Urls = None, queues: Optional[Sequence[str]] = None,
                    concurrency: Optional[int] = None, token: Optional[str] = None,
                    labels: Optional[Sequence[str]] = None, max_prefetch: Optional[int] = None,
                    worker_id: Optional[str] = None, tls_ca: Optional[str] = None,
                    tls_domain: Optional[str] = None, shutdown_timeout: float = 30.0,
                    result_batch_size: int = 100, result_batch_delay: float = 0.005,
                    heartbeat_interval: float = 5.0,
                    reconnect_backoff: tuple[float, float] = (0.05, 5.0),
                    env: Optional[Mapping[str, str]] = None) -> WorkerSettings:
    """Resolves a worker's settings; arguments win over the environment."""
    env = os.environ if env is None else env
    hostname = socket.gethostname()
    if queues is None:
        queues = split_list(env.get("WORKER_QUEUES", "")) or ["default"]
    if labels is None:
        labels = split_list(env.get("WORKER_LABELS", ""))
    worker_id = _text(worker_id, "WORKER_ID", env) or \
        f"{hostname}-{os.getpid()}-{random.getrandbits(32):08x}"
    return WorkerSettings(
        connection=connection(gateway, token, "GATEWAY_WORKER_TOKEN", tls_ca, tls_domain, env),
        worker_id=worker_id,
        hostname=hostname,
        labels=list(labels),
        queues=list(queues),
        concurrency=_positive_int(concurrency, "concurrency", "WORKER_CONCURRENCY", env,
                                  DEFAULT_CONCURRENCY),
        max_prefetch=_positive_int(max_prefetch, "max_prefetch", "WORKER_MAX_PREFETCH", env,
                                   DEFAULT_MAX_PREFETCH, allow_zero=True),
        shutdown_timeout=shutdown_timeout,
        flush_count=max(1, result_batch_size),
        flush_delay=max(0.0, result_batch_delay),
        heartbeat_interval=max(0.01, heartbeat_interval),
        reconnect_min=reconnect_backoff[0],
        reconnect_max=max(reconnect_backoff),
    )
