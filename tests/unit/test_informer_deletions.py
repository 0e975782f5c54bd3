"""Deletions (a watch of deletions only) on a real etcd: it hears every
deletion with the record as it was and no put; after a compacted revision
it tells its listeners that deletions may have been missed (GAP), then
hears the next ones."""

import asyncio

from aetcd import rpc as etcd_rpc

from nimbus.store.informer import DELETED, GAP, Deletions


def value(v: str) -> etcd_rpc.PutRequest:
    return etcd_rpc.PutRequest(value=v.encode())


async def heard_until(heard: list, n: int) -> list:
    async with asyncio.timeout(10):
        while len(heard) < n:
            await asyncio.sleep(0.02)
    return heard


async def test_only_deletions_with_the_old_record(store):
    await store.txn([], [store.put("d/1", value("one")), store.put("d/2", value("two"))])
    deletions = Deletions(store, "d/", etcd_rpc.PutRequest)
    heard = []
    deletions.add_listener(lambda kind, key, new, old: heard.append(
        (kind, key, new, old.msg.value.decode() if old else None)))
    task = asyncio.create_task(deletions.run())
    try:
        await asyncio.wait_for(deletions.synced.wait(), 10)
        await store.txn([], [store.put("d/1", value("uno")), store.put("d/3", value("three"))])
        await store.txn([], [store.delete("d/1")])
        await store.txn([], [store.put("d/2", value("dos"))])
        await store.txn([], [store.delete("d/", prefix=True)])
        await heard_until(heard, 3)
        await asyncio.sleep(0.2)   # nothing more comes: the puts were never sent
        assert sorted(heard) == [(DELETED, "d/1", None, "uno"), (DELETED, "d/2", None, "dos"),
                                 (DELETED, "d/3", None, "three")]
    finally:
        task.cancel()


async def test_a_compacted_revision_is_a_gap_then_deletions_go_on(store):
    await store.txn([], [store.put("g/1", value("one")), store.put("g/2", value("two"))])
    old = await store.current_revision()
    await store.txn([], [store.delete("g/1")])   # missed: it happens before the watch
    await store.txn([], [store.put("g/0", value("zero"))])
    await store._kv.Compact(etcd_rpc.CompactionRequest(
        revision=await store.current_revision(), physical=True))
    deletions = Deletions(store, "g/", etcd_rpc.PutRequest)
    deletions.revision = old   # as if its watch had broken at `old`
    heard = []
    deletions.add_listener(lambda kind, key, new, old: heard.append((kind, key)))
    task = asyncio.create_task(deletions.run())
    try:
        assert await heard_until(heard, 1) == [(GAP, "")]
        await store.txn([], [store.delete("g/2")])
        assert await heard_until(heard, 2) == [(GAP, ""), (DELETED, "g/2")]
    finally:
        task.cancel()
