"""Hosts ordered by the RAM weigher's key, so a placement walks the best
few instead of weighing every host."""

from __future__ import annotations

import bisect
import random
from typing import Iterator


class WeightIndex:
    """Hosts by weight, best first. Hosts of exactly equal weight share a
    bucket that is walked in a fresh random order every time: the weigher's
    random tie-break, without a random number per host per placement."""

    def __init__(self) -> None:
        self._keys: list[float] = []              # -weight, ascending: best first
        self._buckets: dict[float, list[str]] = {}
        self._where: dict[str, tuple[float, int]] = {}   # host -> (key, slot in bucket)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, host: str) -> bool:
        return host in self._where

    def put(self, host: str, weight: float) -> None:
        key = -weight
        where = self._where.get(host)
        if where is not None:
            if where[0] == key:
                return
            self.discard(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            bisect.insort(self._keys, key)
        self._where[host] = (key, len(bucket))
        bucket.append(host)

    def discard(self, host: str) -> None:
        where = self._where.pop(host, None)
        if where is None:
            return
        key, slot = where
        bucket = self._buckets[key]
        last = bucket.pop()
        if last != host:   # move the last host into the freed slot
            bucket[slot] = last
            self._where[last] = (key, slot)
        if not bucket:
            del self._buckets[key]
            del self._keys[bisect.bisect_left(self._keys, key)]

    def best_first(self, rng: random.Random) -> Iterator[str]:
        """Every host, best weight first, ties in uniformly random order (a
        lazy Fisher-Yates over each bucket: cost per host taken, not per
        host in the bucket). Do not change the index while iterating."""
        for key in self._keys:
            bucket = self._buckets[key]
            n = len(bucket)
            for i in range(n):
                j = rng.randrange(i, n)
                if j != i:
                    bucket[i], bucket[j] = bucket[j], bucket[i]
                    self._where[bucket[i]] = (key, i)
                    self._where[bucket[j]] = (key, j)
                yield bucket[i]
