"""The package's exceptions."""

from __future__ import annotations


class FaktoryGatewayError(Exception):
    """Base class of every error this package raises."""


class ConfigError(FaktoryGatewayError, ValueError):
    """A setting (constructor argument or environment variable) is invalid; ``name`` says which."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class WorkerRefused(FaktoryGatewayError):
    """The gateway refused the worker in a way retrying cannot fix (bad token, invalid hello)."""

    def __init__(self, code: str, details: str):
        super().__init__(f"gateway refused the worker: {code}: {details}")
        self.code = code
        self.details = details


class PushError(FaktoryGatewayError):
    """A whole ``Push`` call failed (no job of it was pushed, or the gateway did not answer).

    ``code`` is the gRPC status code's name, e.g. ``UNAUTHENTICATED`` or ``UNAVAILABLE``.
    """

    def __init__(self, code: str, details: str):
        super().__init__(f"push failed: {code}: {details}")
        self.code = code
        self.details = details
