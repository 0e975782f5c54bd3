"""reservations.complete on a real etcd: chunks under etcd's limits, two
writers at once write every server once, a server deleted meanwhile stays
deleted, and reconcile leaves a fresh reservation to its writer."""

import asyncio
import uuid

from nimbus import reservations
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.state.v1 import records_pb2
from nimbus.store import keys


def reservation(count: int, user_data: bytes = b"u" * 60000) -> records_pb2.Reservation:
    created = now()
    return records_pb2.Reservation(
        reservation_id="r-" + uuid.uuid4().hex[:8], project_id="p",
        template=records_pb2.InstanceRecord(
            server=C.Server(name="big", project_id="p", created_at=created), request_id="req-1"),
        build_inputs=records_pb2.BuildInputs(user_data=user_data),
        server_ids=[str(uuid.uuid4()) for _ in range(count)], numbered=True, created_at=created)


async def written(store) -> list[records_pb2.InstanceRecord]:
    items, _ = await store.list(keys.INSTANCES, records_pb2.InstanceRecord)
    return [v.msg for _, v in items]


async def test_two_writers_complete_a_reservation_once(store):
    res = reservation(70)   # 70 x 60 KB: over etcd's 1.5 MiB, several chunks
    await store.txn([], [store.put(keys.reservation(res.reservation_id), res)])
    await asyncio.gather(reservations.complete(store, res.reservation_id),
                         reservations.complete(store, res.reservation_id))
    records = await written(store)
    assert sorted(r.server.id for r in records) == sorted(res.server_ids)
    assert {r.server.name for r in records} == {f"big-{i + 1}" for i in range(70)}
    assert all(r.build_inputs_apart and not r.user_data for r in records)
    assert await store.count(keys.BUILD_INPUTS) == 70
    assert await store.count(keys.ACTIONS) == 70
    assert await store.count(keys.RESERVATIONS) == 0


async def test_a_server_deleted_mid_reservation_is_not_written_again(store):
    res = reservation(5, user_data=b"")
    res.written = 2   # two already written ...
    for i in range(2):
        _, ops = reservations.server_ops(store, res.template, None, res.server_ids[i], i, f"big-{i + 1}")
        await store.txn([], ops)
    await store.txn([], [store.delete(keys.instance(res.server_ids[0])),   # ... one deleted since
                         store.put(keys.reservation(res.reservation_id), res)])
    await reservations.complete(store, res.reservation_id)
    assert sorted(r.server.id for r in await written(store)) == sorted(res.server_ids[1:])


async def test_reconcile_completes_only_reservations_past_their_deadline(store):
    fresh, stale = reservation(3, b""), reservation(3, b"")
    stale.created_at.FromSeconds(now().ToSeconds() - 120)
    for res in (fresh, stale):
        await store.txn([], [store.put(keys.reservation(res.reservation_id), res)])
    assert await reservations.reconcile(store, stale_after=30) == 1
    left, _ = await store.list(keys.RESERVATIONS, records_pb2.Reservation)
    assert [v.msg.reservation_id for _, v in left] == [fresh.reservation_id]
    assert await store.count(keys.INSTANCES) == 3
