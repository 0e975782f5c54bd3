"""Writing new servers' records, and multi-creates larger than one etcd
transaction.

Every server of a create is its instance record (small: controllers watch
it), its 'create' action and, when the request carries any, its build
inputs apart (user_data up to 64 KB, injected files: `keys.build_inputs`).
`server_ops` makes those ops from the create's template record.

A create whose servers fit in one transaction (etcd's 128 operations and
1.5 MiB) is written by admission.py in one. A larger one (Nova's ceiling
is the quota, not a transaction) is a Reservation:

  1. the quota for all its servers, the server group's members and the
     idempotency token are taken in ONE transaction that writes
     reservations/<id> (template, build inputs, server ids, written = 0);
  2. `complete` writes the servers in chunks; each chunk's transaction
     compares the reservation's mod_revision and moves `written` (the last
     one deletes the reservation), so two writers (the API, the conductor's
     reconciler) never write a server twice, and a server deleted meanwhile
     never comes back;
  3. a reservation older than a deadline (its writer crashed) is completed
     by the conductor (`reconcile`): the quota taken is never held for
     servers that will not exist, and every server written builds.
"""

from __future__ import annotations

import asyncio

import grpc

from nimbus import crashpoints, errors, log
from nimbus.clock import now
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import MAX_REQUEST_BYTES, MAX_TXN_OPS, Store, Versioned, txn_bytes

_log = log.get("nimbus.reservations")

# Room left in a chunk's transaction for the reservation's own put/compare.
_CHUNK_OPS = MAX_TXN_OPS - 8
_CHUNK_MARGIN = 8 * 1024
STALE_AFTER = 30.0      # seconds: a reservation this old has lost its writer


def server_ops(store: Store, template: records_pb2.InstanceRecord,
               inputs: records_pb2.BuildInputs | None, server_id: str, index: int,
               name: str, attach=None) -> tuple[records_pb2.InstanceRecord, list]:
    """One server's record (from the create's template) and the ops that
    write it: the record, its 'create' action, its build inputs if any, and
    what `attach(record)` returns (volumes at boot: it adds them to the
    record before the record is written)."""
    record = records_pb2.InstanceRecord()
    record.CopyFrom(template)
    server = record.server
    server.id, server.name, server.launch_index = server_id, name, index
    action = records_pb2.InstanceAction(
        request_id=template.request_id, instance_id=server_id, action="create",
        project_id=server.project_id, user_id=server.user_id, start_time=server.created_at)
    ops = list(attach(record)) if attach is not None else []
    if inputs is not None and (inputs.user_data or inputs.personality):
        record.build_inputs_apart = True
        ops.append(store.put(keys.build_inputs(server_id), inputs))
    ops[:0] = [store.put(keys.instance(server_id), record),
               store.put(keys.action(server_id, template.request_id), action)]
    return record, ops


def server_name(name: str, index: int, numbered: bool) -> str:
    return f"{name}-{index + 1}" if numbered else name


def fits_one_txn(ops_per_server: int, bytes_per_server: int, count: int, extra_ops: int = 8) -> bool:
    """Whether `count` servers (plus quota, group and token) fit in one transaction."""
    return (ops_per_server * count + extra_ops <= MAX_TXN_OPS - 8
            and bytes_per_server * count <= MAX_REQUEST_BYTES - 64 * 1024)


def _chunk(store: Store, res: records_pb2.Reservation) -> tuple[list, int]:
    """The ops of the next servers to write, as many as fit; the new `written`."""
    budget = MAX_REQUEST_BYTES - res.ByteSize() - _CHUNK_MARGIN
    ops: list = []
    used = 0
    index = res.written
    while index < len(res.server_ids):
        name = server_name(res.template.server.name, index, res.numbered)
        _, server = server_ops(store, res.template, res.build_inputs, res.server_ids[index], index, name)
        size = txn_bytes(server)
        if ops and (len(ops) + len(server) > _CHUNK_OPS or used + size > budget):
            break
        ops += server
        used += size
        index += 1
    return ops, index


async def complete(store: Store, reservation_id: str) -> None:
    """Write the reservation's remaining servers, chunk by chunk, then remove
    it. Safe to run by several writers at once, and after a crash."""
    key = keys.reservation(reservation_id)
    current = await store.get(key, records_pb2.Reservation)
    while current is not None:
        res = current.msg
        ops, written = _chunk(store, res)
        last = written >= len(res.server_ids)
        after = records_pb2.Reservation()
        after.CopyFrom(res)
        after.written = written
        ops.append(store.delete(key) if last else store.put(key, after))
        resp = await store.txn([store.mod_is(key, current.mod_revision)], ops, [store.get_op(key)])
        if resp.succeeded:
            crashpoints.reach("create:chunk-written")
            if last:
                return
            current = Versioned(after, resp.header.revision)
            continue
        kvs = resp.responses[0].response_range.kvs   # another writer moved it on (or finished)
        current = (Versioned(records_pb2.Reservation.FromString(kvs[0].value), kvs[0].mod_revision)
                   if kvs else None)


async def reconcile(store: Store, stale_after: float = STALE_AFTER) -> int:
    """Complete every reservation older than `stale_after` seconds (its
    writer died); returns how many."""
    items, _ = await store.list(keys.RESERVATIONS, records_pb2.Reservation)
    done = 0
    current = now().ToSeconds()
    for _, found in items:
        if current - found.msg.created_at.ToSeconds() >= stale_after:
            _log.warning("completing a reservation its writer left", reservation_id=found.msg.reservation_id,
                         written=found.msg.written, servers=len(found.msg.server_ids))
            await complete(store, found.msg.reservation_id)
            done += 1
    return done


async def run(store: Store, stale_after: float = STALE_AFTER) -> None:
    """Forever (the conductor's leader): complete abandoned reservations."""
    while True:
        try:
            await reconcile(store, stale_after)
        except (errors.NimbusError, grpc.aio.AioRpcError) as exc:
            _log.warning("reservation sweep failed, retrying", error=str(exc))
        await asyncio.sleep(max(0.5, stale_after / 4))
