"""Group commit per key (a project's creates, a host's removals).

While one commit of a key is in flight, that key's next items queue; the
queue is then committed together. Items carry a `future` that the commit
resolves (a result, or an error for that item); an error escaping the
commit reaches every item of its batch still waiting."""

from __future__ import annotations

import asyncio
import collections
from typing import Awaitable, Callable, Generic, TypeVar

from nimbus import metrics

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, name: str, take: Callable[[list[T]], list[T]],
                 commit: Callable[[str, list[T]], Awaitable[None]]):
        """`take(queue)` pops the next batch off a key's queue; `commit(key,
        batch)` writes it and resolves the items' futures."""
        self._depth = metrics.QUEUE_DEPTH.labels(name)
        self._take = take
        self._commit = commit
        self._queues: dict[str, list[T]] = collections.defaultdict(list)
        self._draining: set[str] = set()

    async def submit(self, key: str, item: T):
        item.future = asyncio.get_running_loop().create_future()
        self._queues[key].append(item)
        if key not in self._draining:
            self._draining.add(key)
            asyncio.create_task(self._drain(key))
        return await item.future

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                self._depth.observe(len(queue))
                batch = self._take(queue)
                try:
                    await self._commit(key, batch)
                except Exception as exc:  # noqa: BLE001 - each caller gets the error
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
        finally:
            self._draining.discard(key)
            if queue:   # arrived after the loop's last look
                self._draining.add(key)
                asyncio.create_task(self._drain(key))
