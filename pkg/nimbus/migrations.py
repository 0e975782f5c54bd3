"""Moves of a server (resize, cold migration): the records that must agree
and the fragments that change them together.

A move is three records in step: the instance (its task state and its
`migration_context`, which both hosts read), the migration record
(`migrations/<id>`, its status) and the allocations: during the move the
source host's allocation is held by the migration's id and the
destination's by the instance (Nova's migration allocations), so each host
counts exactly what it holds. Every change of a move is one transaction;
`allocations()` is the fragment that moves resources between consumers and
hosts, keeping each host's ProviderUsage equal to the sum of its
allocations (compared on its mod_revision, as claims are)."""

from __future__ import annotations

import dataclasses

from nimbus import quota, resources
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store, Versioned

C = compute_pb2
R = records_pb2
# A migration in one of these is over: its records are history.
FINAL = frozenset({"confirmed", "reverted", "error"})


class NoRoom(Exception):
    """A host cannot hold what a change would add to it."""


@dataclasses.dataclass
class Fragment:
    compares: list = dataclasses.field(default_factory=list)
    ops: list = dataclasses.field(default_factory=list)

    def add(self, compares, ops) -> "Fragment":
        self.compares.extend(compares)
        self.ops.extend(ops)
        return self

    def astuple(self) -> tuple[list, list]:
        return self.compares, self.ops


def allocation_keys(changes) -> dict[str, type]:
    """What allocations() reads for `changes`: for read() to fetch in the
    caller's one round trip, together with the caller's own records."""
    wanted = {keys.allocation(host, consumer): R.Allocation for host, consumer in changes}
    wanted.update({keys.provider(host): R.ProviderUsage for host, _ in changes})
    return wanted


async def allocations(store: Store, changes: dict[tuple[str, str], R.Resources | None],
                      nodes: dict[str, R.NodeRecord] | None = None,
                      project_id: str = "", known: dict[str, Versioned | None] | None = None
                      ) -> Fragment:
    """(compares, ops) setting each (host, consumer)'s allocation to the
    given resources (None: remove it), with every touched host's usage.
    A host in `nodes` must fit what it gains (else NoRoom). `known` holds
    records already read (read() of allocation_keys); the rest is read in
    one round trip. Every record read is compared on its mod_revision."""
    wanted = allocation_keys(changes)
    known = dict(known or {})
    known.update(await store.get_many({k: cls for k, cls in wanted.items() if k not in known}))
    frag = Fragment()
    # host -> [vcpus, memory_mb, disk_gb, consumers], signed (Resources clamps at 0).
    deltas: dict[str, list[int]] = {}
    projects = {}
    for (host, consumer), want in changes.items():
        akey = keys.allocation(host, consumer)
        current = known[akey]
        frag.compares.append(store.mod_is(akey, current.mod_revision if current else 0))
        delta = deltas.setdefault(host, [0, 0, 0, 0])
        for sign, res in ((-1, current.msg.resources if current else None), (+1, want)):
            if res is not None:
                delta[0] += sign * res.vcpus
                delta[1] += sign * res.memory_mb
                delta[2] += sign * res.disk_gb
                delta[3] += sign
        if current is not None:
            projects.setdefault(consumer, current.msg.project_id)
        if want is not None:
            frag.ops.append(store.put(akey, R.Allocation(
                consumer_id=consumer, host=host, resources=want,
                project_id=project_id or projects.get(consumer, ""))))
        elif current is not None:
            frag.ops.append(store.delete(akey))
    for host, (vcpus, memory_mb, disk_gb, count) in deltas.items():
        if not (vcpus or memory_mb or disk_gb or count):
            continue
        pkey = keys.provider(host)
        usage = known[pkey]
        used = R.ProviderUsage(host=host)
        if usage is not None:
            used.CopyFrom(usage.msg)
        gain = R.Resources(vcpus=max(0, vcpus), memory_mb=max(0, memory_mb), disk_gb=max(0, disk_gb))
        if nodes and host in nodes and gain != R.Resources() and not resources.fits(
                nodes[host], used.used, gain):
            raise NoRoom(host)
        used.used.vcpus = max(0, used.used.vcpus + vcpus)
        used.used.memory_mb = max(0, used.used.memory_mb + memory_mb)
        used.used.disk_gb = max(0, used.used.disk_gb + disk_gb)
        used.consumers = max(0, used.consumers + count)
        frag.compares.append(store.mod_is(pkey, usage.mod_revision if usage else 0))
        frag.ops.append(store.put(pkey, used))
    return frag


def context_of(rec: R.InstanceRecord) -> R.MigrationContext | None:
    return rec.migration_context if rec.HasField("migration_context") else None


def charged(rec: R.InstanceRecord) -> tuple[int, int]:
    """(cores, RAM) the project's usage holds for this server: the larger
    of both flavors while it moves (the upsize is charged at resize, the
    downsize given back only by the confirm)."""
    flavor, ctx = rec.server.flavor, context_of(rec)
    if ctx is None:
        return flavor.vcpus, flavor.ram_mb
    return (max(ctx.old_flavor.vcpus, ctx.new_flavor.vcpus),
            max(ctx.old_flavor.ram_mb, ctx.new_flavor.ram_mb))


def quota_deltas(vcpus: int, ram_mb: int) -> dict[str, int]:
    return {"cores": vcpus, "ram": ram_mb}


async def quota_fragment(store: Store, project: str, vcpus: int, ram_mb: int,
                         known: dict[str, Versioned | None] | None = None) -> Fragment:
    """The usage change of a move, checked. `known`: the quota records
    already read by the caller (quota.snapshot_keys), spared a round trip."""
    if not vcpus and not ram_mb:
        return Fragment()
    deltas = quota_deltas(vcpus, ram_mb)
    if known is not None and all(k in known for k in quota.snapshot_keys(project)):
        plan = quota.plan_of(store, quota.snapshot_of(project, known), deltas)
    else:
        plan = await quota.plan(store, project, deltas)
    return Fragment(list(plan.compares), list(plan.ops))


async def get(store: Store, migration_id: str) -> Versioned | None:
    return await store.get(keys.migration(migration_id), R.MigrationRecord)


def with_status(store: Store, current: Versioned, status: str,
                **fields) -> tuple[Fragment, R.MigrationRecord]:
    """The migration record moved to `status` (and `fields`), compared on
    its mod_revision: (the fragment, the new record)."""
    new = R.MigrationRecord()
    new.CopyFrom(current.msg)
    new.migration.status = status
    for name, value in fields.items():
        setattr(new.migration, name, value)
    new.migration.updated_at.CopyFrom(now())
    key = keys.migration(new.migration.id)
    return Fragment([store.mod_is(key, current.mod_revision)], [store.put(key, new)]), new


class Recent:
    """The migration records this process wrote last, so a move's next step
    need not read them back. A record is only taken while the instance is
    still at the revision that wrote both (every write of a migration also
    writes its instance, in one transaction): then nothing can have changed
    it since. The transaction still compares its mod_revision."""

    LIMIT = 4096

    def __init__(self):
        self._records: dict[str, Versioned] = {}

    def get(self, migration_id: str, instance_revision: int) -> Versioned | None:
        found = self._records.get(migration_id)
        return found if found is not None and found.mod_revision == instance_revision else None

    def wrote(self, record: R.MigrationRecord, revision: int) -> None:
        mid = record.migration.id
        self._records.pop(mid, None)
        if record.migration.status in FINAL:
            return
        self._records[mid] = Versioned(record, revision)
        while len(self._records) > self.LIMIT:   # the oldest first (dicts keep order)
            self._records.pop(next(iter(self._records)))

    def forget(self, migration_id: str) -> None:
        self._records.pop(migration_id, None)
