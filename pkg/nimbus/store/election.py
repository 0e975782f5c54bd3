"""Leader election on an etcd lease: the leader holds leaders/<role>.

Only the leader runs `lead()` (the conductor's scheduling loop). Losing the
lease (etcd unreachable for a TTL, or a pause) cancels `lead()` at once;
a standby campaigns again as soon as the key disappears or its TTL passes.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Awaitable, Callable

from aetcd import rpc

from nimbus import log
from nimbus.store import keys
from nimbus.store.store import Store

_log = log.get("nimbus.election")


class LeaderElection:
    def __init__(self, store: Store, role: str, ttl: int = 6, identity: str | None = None):
        self.store = store
        self.role = role
        self.ttl = ttl
        self.identity = identity or uuid.uuid4().hex
        self.is_leader = False

    async def _campaign(self) -> int:
        key = keys.leader(self.role)
        while True:
            lease = await self.store.grant(self.ttl)
            resp = await self.store.txn(
                [self.store.mod_is(key, 0)],
                [rpc.RequestOp(request_put=rpc.PutRequest(
                    key=self.store.key(key), value=self.identity.encode(), lease=lease))])
            if resp.succeeded:
                return lease
            await self.store.revoke(lease)
            # Someone leads: wait until the key goes (or a TTL, as a backstop).
            try:
                await asyncio.wait_for(self._wait_deleted(key), self.ttl)
            except asyncio.TimeoutError:
                pass

    async def _wait_deleted(self, key: str) -> None:
        current = await self.store.get_raw(key)
        if current is None:
            return
        async for events in self.store.watch(key, current + 1):
            if any(ev.type == 1 for ev in events):
                return

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                lease = await self._campaign()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - etcd away: try again
                _log.warning("campaign failed", role=self.role, error=str(exc))
                await asyncio.sleep(1)
                continue
            self.is_leader = True
            _log.info("elected leader", role=self.role, identity=self.identity)
            task = asyncio.create_task(lead())
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=self.ttl / 3)
                    if task.done():
                        break
                    if await self.store.refresh(lease) <= 0:
                        _log.warning("leadership lost", role=self.role)
                        break
            except asyncio.CancelledError:
                task.cancel()
                await self.store.revoke(lease)
                raise
            except Exception as exc:  # noqa: BLE001
                _log.warning("leadership lost", role=self.role, error=str(exc))
            finally:
                self.is_leader = False
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - the leader task's end is logged by itself
                pass
            await self.store.revoke(lease)
