"""Admitting new servers: quota, records and server-group membership in one
etcd transaction, with group commit per project.

Creates of one project all change the same usage key. Run one after the
other they cost an etcd round trip (and fsync) each and leave every other
component with batches of one; run concurrently they lose compare races and
retry. So while one transaction of a project is in flight, that project's
next creates queue, and the queue is committed as ONE transaction: each
create gets as many servers as still fit between its min_count and
max_count (Nova's rule, applied in arrival order), usage moves once, and
the compare on the usage key still makes it correct across API replicas.
Creates that join a server group, or carry an idempotency token, are
committed alone (each compares a record of its own: the group's, or the
token's absence). So is a create too large for one transaction: its
transaction takes the quota and writes a Reservation instead of the
servers, which reservations.complete then writes in chunks."""

from __future__ import annotations

import asyncio
import dataclasses

from nimbus import errors, quota, servergroups
from nimbus.compute.v1 import quotas_pb2
from nimbus.groupcommit import GroupCommit
from nimbus.idempotency import TokenTaken
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store, Versioned

MAX_OPS = 120          # etcd refuses a txn of more than 128 operations


@dataclasses.dataclass
class Admission:
    project: str
    per_item: dict[str, int]
    min_count: int
    max_count: int
    server_ops: list[list]              # the ops of each candidate server, in order
    server_ids: list[str]
    group: Versioned | None = None
    token_key: str = ""                          # idempotency token (idempotency.py)
    token: records_pb2.ClientToken | None = None  # its record, server_ids filled here
    token_lease: int = 0
    # A create too large for one transaction: written as this reservation
    # (server_ids cut to the count admitted) instead of server_ops.
    reservation: records_pb2.Reservation | None = None
    # compares of records the servers take (an existing volume to boot
    # from): a failed one is FAILED_PRECONDITION (the volume changed).
    extra_compares: list = dataclasses.field(default_factory=list)
    future: asyncio.Future | None = None

    @property
    def size(self) -> int:
        if self.reservation is not None:
            return 4
        return sum(len(ops) for ops in self.server_ops) + 3

    @property
    def alone(self) -> bool:
        """Committed in a transaction of its own (see the module's doc)."""
        return (self.group is not None or bool(self.token_key) or self.reservation is not None
                or bool(self.extra_compares))


def _next_batch(queue: list[Admission]) -> list[Admission]:
    """As many as fit in one transaction; an `alone` admission by itself."""
    batch, ops = [], 0
    while queue and (not batch or (ops + queue[0].size <= MAX_OPS
                                   and not queue[0].alone and not batch[0].alone)):
        ops += queue[0].size
        batch.append(queue.pop(0))
    return batch


class Committer:
    def __init__(self, store: Store):
        self.store = store
        self._group = GroupCommit("admission", _next_batch, self._commit)

    async def admit(self, admission: Admission) -> int:
        """How many of the admission's servers were written (>= min_count),
        or QuotaExceeded."""
        return await self._group.submit(admission.project, admission)

    async def _commit(self, project: str, batch: list[Admission]) -> None:
        while True:
            snap = await quota.snapshot(self.store, project)
            in_use, admitted, compares, ops = dict(snap.usage), [], [], []
            for adm in batch:
                if adm.future.done():
                    continue
                count = quota.fit_count(snap.limits, in_use, adm.per_item, adm.max_count)
                if count < adm.min_count:
                    adm.future.set_exception(errors.QuotaExceeded(project, quota.violations(
                        snap.limits, in_use, quota.scaled(adm.per_item, adm.min_count))))
                    continue
                if adm.group is not None:
                    try:
                        quota.check_server_group_members(
                            snap.limits, len(adm.group.msg.members), count, project=project)
                    except errors.QuotaExceeded as exc:
                        adm.future.set_exception(exc)
                        continue
                    g_compares, g_ops = servergroups.add_members(
                        self.store, adm.group, adm.server_ids[:count])
                    compares += g_compares
                    ops += g_ops
                if adm.token_key:
                    token = records_pb2.ClientToken()
                    token.CopyFrom(adm.token)
                    token.server_ids.extend(adm.server_ids[:count])
                    compares.append(self.store.mod_is(adm.token_key, 0))
                    ops.append(self.store.put(adm.token_key, token, lease=adm.token_lease))
                compares += adm.extra_compares
                in_use = quota.apply_deltas(in_use, quota.scaled(adm.per_item, count))
                if adm.reservation is not None:
                    reservation = records_pb2.Reservation()
                    reservation.CopyFrom(adm.reservation)
                    del reservation.server_ids[count:]
                    rkey = keys.reservation(reservation.reservation_id)
                    compares.append(self.store.mod_is(rkey, 0))
                    ops.append(self.store.put(rkey, reservation))
                else:
                    ops += [op for server_ops in adm.server_ops[:count] for op in server_ops]
                admitted.append((adm, count))
            if not admitted:
                return
            usage_key = keys.usage(project)
            compares.append(self.store.mod_is(usage_key, snap.usage_revision))
            ops.append(self.store.put(usage_key, quotas_pb2.QuotaUsage(**in_use)))
            resp = await self.store.txn(compares, ops, [self.store.get_op(usage_key)])
            if resp.succeeded:
                for adm, count in admitted:
                    adm.future.set_result(count)
                return
            kvs = resp.responses[0].response_range.kvs
            if (kvs[0].mod_revision if kvs else 0) == snap.usage_revision:
                # The usage held, so a server group changed (or went), or a
                # concurrent create took the token: read them again.
                for adm, _ in admitted:
                    if adm.extra_compares:
                        adm.future.set_exception(errors.FailedPrecondition(
                            "a volume of the request changed meanwhile (attached, or deleted); "
                            "check it and retry"))
                        continue
                    if adm.token_key and await self.store.get_raw(adm.token_key) is not None:
                        adm.future.set_exception(TokenTaken())
                        continue
                    if adm.group is not None:
                        try:
                            adm.group = await servergroups.get_server_group(
                                self.store, project, adm.group.msg.id)
                        except errors.NotFound as exc:
                            adm.future.set_exception(exc)
