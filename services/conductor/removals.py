"""Removing deleted servers from a host, with group commit per host.

Every finish_delete changes the host's ProviderUsage and its project's
QuotaUsage. One at a time, each held the host's claim lock for two etcd
round trips behind a per-project lock: under 200 clients on 4 hosts the
queue grew until FinishDeleteInstance took 5-10 s (p50 5.3 s) and agents'
deadlines ran out. So while one removal of a host is in flight, that
host's next removals queue, and the queue is committed as ONE transaction:
every instance record and its actions and allocation deleted, each
project's usage moved once by the sum of its releases, the provider usage
moved once. Every record is compared, so it stays correct across conductor
processes; a lost race re-reads and goes again, and an instance that
changed meanwhile is handed back to its caller (InstanceChanged)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses

from nimbus import instances, quota
from nimbus.compute.v1 import quotas_pb2
from nimbus.groupcommit import GroupCommit
from nimbus.services.conductor.claims import Claims, InstanceChanged
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store, Versioned

MAX_BATCH = 20          # 5 ops each, plus usages: under etcd's 128 ops per txn


@dataclasses.dataclass
class Removal:
    current: Versioned
    future: asyncio.Future | None = None

    @property
    def server(self):
        return self.current.msg.server


def _next_batch(queue: list[Removal]) -> list[Removal]:
    batch = queue[:MAX_BATCH]
    del queue[:MAX_BATCH]
    return batch


class Remover:
    def __init__(self, store: Store, claims: Claims):
        self.store = store
        self.claims = claims
        # Hosts' batches of one project all compare its usage key: run at
        # once (1,000 hosts deleting a project's servers) they lost to each
        # other round after round until agents' deadlines ran out. In this
        # process a batch that lost once takes turns per project (sorted: no
        # deadlock); a first try takes no turn.
        self._project_locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._group = GroupCommit("removals", _next_batch, self._commit)

    async def remove(self, host: str, current: Versioned) -> None:
        """Remove the (DELETING) instance record `current`, on `host`, with its
        allocation and its quota; InstanceChanged when it changed meanwhile."""
        await self._group.submit(host, Removal(current))

    async def _commit(self, host: str, batch: list[Removal]) -> None:
        projects = sorted({r.server.project_id for r in batch})
        batch = await self._try(host, batch, projects)   # optimistic: usually no one else
        while batch:
            projects = sorted({r.server.project_id for r in batch})
            async with contextlib.AsyncExitStack() as turns:
                for project in projects:
                    await turns.enter_async_context(self._project_locks[project])
                batch = await self._try(host, batch, projects)

    async def _try(self, host: str, batch: list[Removal], projects: list[str]) -> list[Removal]:
        """One read + transaction; what must go again (empty: done)."""
        store = self.store
        akeys = [keys.allocation(host, r.server.id) for r in batch]
        reads = await store.txn([], [*(store.get_op(k) for k in akeys),
                                     *(store.get_op(keys.usage(p)) for p in projects)])
        allocations = [_versioned(reads.responses[i], records_pb2.Allocation)
                       for i in range(len(akeys))]
        usages = {p: _versioned(reads.responses[len(akeys) + i], quotas_pb2.QuotaUsage)
                  for i, p in enumerate(projects)}
        released: dict[str, dict[str, int]] = collections.defaultdict(dict)
        compares, ops = [], []
        for r, akey, allocation in zip(batch, akeys, allocations):
            ikey = keys.instance(r.server.id)
            compares += [store.mod_is(ikey, r.current.mod_revision),
                         store.mod_is(akey, allocation.mod_revision if allocation else 0)]
            ops += instances.record_deletes(store, r.server.id)
            if allocation is not None:
                ops.append(store.delete(akey))
            deltas = quota.instance_deltas(r.server.flavor.vcpus, r.server.flavor.ram_mb, -1)
            for resource, delta in deltas.items():
                released[r.server.project_id][resource] = \
                    released[r.server.project_id].get(resource, 0) + delta
        for project, usage in usages.items():
            in_use = quota.usage_of(usage.msg if usage else None)
            after = quota.apply_deltas(in_use, released[project])
            compares.append(store.mod_is(keys.usage(project), usage.mod_revision if usage else 0))
            if after != in_use:
                ops.append(store.put(keys.usage(project), quotas_pb2.QuotaUsage(**after)))
        freed = [a for a in allocations if a is not None]
        async with self.claims.lock(host):
            if freed:
                compares_p, ops_p, commit = self.claims.release_fragment(
                    host, [a.msg.resources for a in freed])
                compares += compares_p
                ops += ops_p
            resp = await store.txn(compares, ops,
                                   [store.get_op(keys.instance(r.server.id)) for r in batch]
                                   + [store.get_op(keys.provider(host))])
            if resp.succeeded:
                if freed:
                    commit(resp.header.revision)
                for r in batch:
                    if not r.future.done():   # its caller may have given up (a deadline)
                        r.future.set_result(None)
                return []
            self.claims.refresh(host, resp.responses[-1].response_range.kvs)
        # Lost: instances that changed go back to their callers; the
        # rest (an allocation, a usage or the provider moved) go again.
        still = []
        for r, got in zip(batch, resp.responses[:-1]):
            kvs = got.response_range.kvs
            if kvs and kvs[0].mod_revision == r.current.mod_revision:
                still.append(r)
            elif not r.future.done():
                r.future.set_exception(InstanceChanged(r.server.id))
        return still


def _versioned(response, cls) -> Versioned | None:
    kvs = response.response_range.kvs
    return Versioned(cls.FromString(kvs[0].value), kvs[0].mod_revision) if kvs else None

