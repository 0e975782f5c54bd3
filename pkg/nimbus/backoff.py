"""Exponential backoff with jitter (client-go's rate-limited requeue).

`delay(attempt)` grows from `base` by doubling up to `cap`, with "equal
jitter" (between half the ceiling and the ceiling): never zero, so a storm
of failures does not spin, and spread, so many retries do not arrive at a
restarting peer in lockstep. `PerKey` keeps a failure count per key (an
instance) and forgets it on success."""

from __future__ import annotations

import random

import grpc

# A peer restarting or overloaded: the call may be tried again as it was.
TRANSPORT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.CANCELLED})


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in TRANSPORT_CODES


def delay(attempt: int, base: float = 0.05, cap: float = 5.0) -> float:
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return random.uniform(ceiling / 2, ceiling)


class PerKey:
    def __init__(self, base: float = 0.05, cap: float = 10.0):
        self.base = base
        self.cap = cap
        self.failures: dict[str, int] = {}

    def failure(self, key: str) -> float:
        """Count a failure of `key`; the delay before its next try."""
        attempt = self.failures.get(key, 0)
        self.failures[key] = attempt + 1
        return delay(attempt, self.base, self.cap)

    def success(self, key: str) -> None:
        self.failures.pop(key, None)
