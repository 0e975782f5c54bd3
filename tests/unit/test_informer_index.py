"""Keyed subscriptions of an informer with an index, on a real etcd: a
subscriber hears only of records under its key, a record leaving its key
included (it can forget it)."""

import asyncio

from aetcd import rpc as etcd_rpc

from nimbus.store.informer import SYNCED, UPSERT, Informer


def host_of(rec: etcd_rpc.PutRequest) -> tuple[str, ...]:
    return (rec.value.decode(),)


async def drain(sub) -> list[tuple[str, str]]:
    out = []
    while not sub.queue.empty():
        kind, v = sub.queue.get_nowait()
        out.append((kind, v.msg.value.decode() if v is not None else ""))
    return out


async def test_keyed_subscriptions_hear_only_their_key(store):
    await store.txn([], [store.put("i/1", etcd_rpc.PutRequest(value=b"a"))])
    informer = Informer(store, "i/", etcd_rpc.PutRequest, index=host_of)
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 10)
    subs = {h: informer.subscribe(lambda rec, h=h: h in host_of(rec), key=h) for h in "abc"}
    assert await drain(subs["a"]) == [(UPSERT, "a"), (SYNCED, "")]
    for h in "bc":
        assert await drain(subs[h]) == [(SYNCED, "")]
    # i/1 moves from a to b; i/2 appears on c.
    await store.txn([], [store.put("i/1", etcd_rpc.PutRequest(value=b"b")),
                         store.put("i/2", etcd_rpc.PutRequest(value=b"c"))])
    async with asyncio.timeout(10):
        while "i/2" not in informer.items:
            await asyncio.sleep(0.02)
    assert await drain(subs["a"]) == [(UPSERT, "b")]   # it left a: a hears so, once
    assert await drain(subs["b"]) == [(UPSERT, "b")]
    assert await drain(subs["c"]) == [(UPSERT, "c")]
    subs["a"].close()
    assert "a" not in informer._keyed
    task.cancel()
