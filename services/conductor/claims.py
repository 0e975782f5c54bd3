"""Resource claims in etcd (placement's job, folded into the conductor).

A claim writes, in ONE transaction: the instance (now on its host), its
allocation, and the host's ProviderUsage with the new totals. The
transaction compares the instance's and the provider's mod_revisions, so two
concurrent claims can never both fit into the same free space: the loser
re-reads the usage and checks again. A per-host lock keeps this process's own
claims from racing each other; the compare makes it correct across
processes. Releases are the mirror image, joined to whatever instance change
caused them (reschedule, delete)."""

from __future__ import annotations

import asyncio
import collections

from aetcd import rpc

from nimbus import resources
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store, Versioned


class InstanceChanged(Exception):
    """The instance changed under a claim or release; the caller re-reads it."""


class Claims:
    def __init__(self, store: Store, providers: Informer):
        self.store = store
        self.providers = providers
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        # Our own writes, newer than the informer until its watch catches up.
        self._written: dict[str, Versioned] = {}

    def lock(self, host: str) -> asyncio.Lock:
        """The host's lock: held around any read-modify-write of its usage
        (this process's claims and releases on `host`, one at a time)."""
        return self._locks[host]

    def _usage(self, host: str) -> Versioned:
        seen = self.providers.items.get(keys.provider(host))
        mine = self._written.get(host)
        if mine is not None and (seen is None or mine.mod_revision >= seen.mod_revision):
            return mine
        return seen or Versioned(records_pb2.ProviderUsage(host=host), 0)

    def release_fragment(self, host: str, freed: list) -> tuple[list, list, object]:
        """(compares, ops, commit) taking the `freed` resources off the
        host's usage in the caller's transaction; call commit(revision)
        when it succeeded. Hold lock(host) from here to commit."""
        usage = self._usage(host)
        new_usage = records_pb2.ProviderUsage()
        new_usage.CopyFrom(usage.msg)
        new_usage.host = host
        for each in freed:
            resources.add(new_usage.used, each, -1)
        new_usage.consumers = max(0, new_usage.consumers - len(freed))

        def commit(revision: int) -> None:
            self._written[host] = Versioned(new_usage, revision)
        return ([self.store.mod_is(keys.provider(host), usage.mod_revision)],
                [self.store.put(keys.provider(host), new_usage)], commit)

    def refresh(self, host: str, kvs) -> None:
        """Take the provider usage a failed transaction read back."""
        if kvs:
            self._written[host] = Versioned(records_pb2.ProviderUsage.FromString(kvs[0].value),
                                            kvs[0].mod_revision)

    async def claim(self, inst: Versioned, node: records_pb2.NodeRecord,
                    alternates: list[str]) -> Versioned | None:
        """Put `inst` on node's host if it fits; None when it does not."""
        host = node.host
        server = inst.msg.server
        want = resources.for_flavor(server.flavor)
        ikey, pkey = keys.instance(server.id), keys.provider(host)
        async with self._locks[host]:
            while True:
                usage = self._usage(host)
                if not resources.fits(node, usage.msg.used, want):
                    return None
                new_usage = records_pb2.ProviderUsage()
                new_usage.CopyFrom(usage.msg)
                new_usage.host = host
                resources.add(new_usage.used, want, +1)
                new_usage.consumers += 1
                new = records_pb2.InstanceRecord()
                new.CopyFrom(inst.msg)
                new.server.host = host
                del new.alternates[:]
                new.alternates.extend(alternates)
                allocation = records_pb2.Allocation(consumer_id=server.id, host=host,
                                                    project_id=server.project_id, resources=want)
                resp = await self.store.txn(
                    [self.store.mod_is(ikey, inst.mod_revision),
                     self.store.mod_is(pkey, usage.mod_revision)],
                    [self.store.put(ikey, new), self.store.put(pkey, new_usage),
                     self.store.put(keys.allocation(host, server.id), allocation)],
                    [self.store.get_op(ikey), self.store.get_op(pkey)])
                if resp.succeeded:
                    self._written[host] = Versioned(new_usage, resp.header.revision)
                    return Versioned(new, resp.header.revision)
                ikvs = resp.responses[0].response_range.kvs
                if not ikvs or ikvs[0].mod_revision != inst.mod_revision:
                    raise InstanceChanged(server.id)
                self.refresh(host, resp.responses[1].response_range.kvs)

    async def release_with(self, host: str, consumer_id: str, compares: list[rpc.Compare],
                           inst_ops: list) -> None:
        """Drop consumer's allocation on host together with `inst_ops`, all
        only if `compares` (the instance's, a quota usage's) hold; raises
        InstanceChanged when one does not, so the caller reads again.
        Without an allocation (already released) only inst_ops are applied."""
        akey, pkey = keys.allocation(host, consumer_id), keys.provider(host)
        async with self._locks[host]:
            while True:
                allocation = await self.store.get(akey, records_pb2.Allocation)
                if allocation is None:
                    resp = await self.store.txn(compares, inst_ops)
                    if not resp.succeeded:
                        raise InstanceChanged(consumer_id)
                    return
                usage = self._usage(host)
                new_usage = records_pb2.ProviderUsage()
                new_usage.CopyFrom(usage.msg)
                new_usage.host = host
                resources.add(new_usage.used, allocation.msg.resources, -1)
                new_usage.consumers = max(0, new_usage.consumers - 1)
                resp = await self.store.txn(
                    [*compares, self.store.mod_is(akey, allocation.mod_revision),
                     self.store.mod_is(pkey, usage.mod_revision)],
                    [*inst_ops, self.store.delete(akey), self.store.put(pkey, new_usage)],
                    [self.store.get_op(pkey)])
                if resp.succeeded:
                    self._written[host] = Versioned(new_usage, resp.header.revision)
                    return
                kvs = resp.responses[0].response_range.kvs
                if kvs and kvs[0].mod_revision != usage.mod_revision:
                    self.refresh(host, kvs)
                    continue
                # Usage unchanged: the instance, a caller's record or the
                # allocation changed.
                check = await self.store.txn(compares, [])
                if not check.succeeded:
                    raise InstanceChanged(consumer_id)
