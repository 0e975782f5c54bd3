"""Per-project quotas: limits, usage, and the checks (Nova's quota engine,
with usage kept in etcd and changed in the caller's own transaction).

Resources and Nova's defaults (-1 is unlimited):

    instances 10, cores 20, ram 51200 (MB), key_pairs 100, server_groups 10,
    server_group_members 10, injected_files 5, injected_file_content_bytes
    10240, injected_file_path_bytes 255, metadata_items 128

State:

    quotas/<project>   QuotaSet: the project's overrides (a field set = overridden)
    usages/<project>   QuotaUsage: in use of the COUNTED resources
                       (instances, cores, ram, key_pairs, server_groups,
                       volumes, gigabytes, snapshots)

The other limits are checked per request, never counted: metadata_items,
injected_files, injected_file_content_bytes, injected_file_path_bytes
(`check_metadata`, `check_personality`), server_group_members
(`check_server_group_members`, the caller counts the group's members).

Consuming and releasing: `plan()` reads the project's limits and usage in
one etcd round trip (one snapshot), refuses with `errors.QuotaExceeded` when
a positive delta would go over a limit, and returns a `QuotaPlan` whose
`compares` (the usage key's mod_revision, 0 when absent) and `ops` (the put
of the new usage) join the caller's transaction next to its records. If that
transaction fails because the usage changed (`plan.lost(resp)`), the caller
plans again; two callers can never both consume the last unit. Negative
deltas (releases) never fail on limits and clamp at 0.

    # one record plus its usage, e.g. a key pair (apply() runs the loop):
    await quota.apply(store, project, {"key_pairs": 1},
                      compares=[store.mod_is(key, 0)], ops=[store.put(key, record)])
    # -> store.ExtraCompareFailed when the caller's own compare failed

    # multi-create: as many as fit in [min_count, max_count] (Nova's rule)
    per_item = quota.instance_deltas(flavor.vcpus, flavor.ram_mb)
    while True:
        plan = await quota.plan_fit(store, project, per_item, min_count, max_count)
        ops = [op for server in servers[:plan.count] for op in server_ops(server)]
        resp = await store.txn(plan.compares, [*plan.ops, *ops], plan.failure_ops)
        if resp.succeeded:
            break
        assert plan.lost(resp)    # only the usage can have changed: plan again

    # delete: release in the transaction that removes the instance record
    plan = await quota.plan(store, server.project_id,
                            quota.instance_deltas(server.flavor.vcpus, server.flavor.ram_mb, -1))
    resp = await store.txn([store.mod_is(ikey, rev), *plan.compares],
                           [store.delete(ikey), *plan.ops], plan.failure_ops)
    # failed: plan.lost(resp) -> usage moved, plan again; else the instance changed

A release belongs in the same transaction as the record's removal (with the
compare on that record) so it happens exactly once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from nimbus import errors
from nimbus.compute.v1 import quotas_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import ExtraCompareFailed, Store

UNLIMITED = -1
MAX_LIMIT = 2**31 - 1   # Nova's limit (a signed 32-bit int)
ATTEMPTS = 100          # re-plans before giving up (each lost race is someone's success)

DEFAULTS: dict[str, int] = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
    "metadata_items": 128,
    "volumes": 10,
    "gigabytes": 1000,
    "snapshots": 10,
}
RESOURCES: tuple[str, ...] = tuple(DEFAULTS)
COUNTED: tuple[str, ...] = ("instances", "cores", "ram", "key_pairs", "server_groups",
                             "volumes", "gigabytes", "snapshots")

assert RESOURCES == tuple(f.name for f in quotas_pb2.QuotaSet.DESCRIPTOR.fields)
assert COUNTED == tuple(f.name for f in quotas_pb2.QuotaUsage.DESCRIPTOR.fields)


# ---- pure helpers ------------------------------------------------------------

def instance_deltas(vcpus: int, ram_mb: int, count: int = 1) -> dict[str, int]:
    """What `count` servers of a flavor consume (negative count: release)."""
    return {"instances": count, "cores": vcpus * count, "ram": ram_mb * count}


def volume_deltas(size_gb: int, count: int = 1) -> dict[str, int]:
    """What `count` volumes of a size consume (negative count: release)."""
    return {"volumes": count, "gigabytes": size_gb * count}


def scaled(per_item: Mapping[str, int], count: int) -> dict[str, int]:
    return {r: d * count for r, d in per_item.items()}


def overrides_of(msg: quotas_pb2.QuotaSet) -> dict[str, int]:
    return {r: getattr(msg, r) for r in RESOURCES if msg.HasField(r)}


def effective(overrides: Mapping[str, int]) -> dict[str, int]:
    return {**DEFAULTS, **overrides}


def usage_of(msg: quotas_pb2.QuotaUsage | None) -> dict[str, int]:
    return {r: getattr(msg, r) if msg is not None else 0 for r in COUNTED}


def _counted(deltas: Mapping[str, int]) -> None:
    for resource in deltas:
        if resource not in COUNTED:
            raise ValueError(f"{resource!r} is not a counted quota resource ({', '.join(COUNTED)})")


def violations(limits: Mapping[str, int], in_use: Mapping[str, int],
               deltas: Mapping[str, int]) -> list[errors.QuotaViolation]:
    """The resources a change would take over their limit. Only positive
    deltas are checked: releasing never fails, even above a lowered limit."""
    out = []
    for resource, delta in deltas.items():
        limit = limits[resource]
        if delta > 0 and limit != UNLIMITED and in_use.get(resource, 0) + delta > limit:
            out.append(errors.QuotaViolation(resource, limit, in_use.get(resource, 0), delta))
    return out


def apply_deltas(in_use: Mapping[str, int], deltas: Mapping[str, int]) -> dict[str, int]:
    """New usage: every counted resource, releases clamped at 0."""
    return {r: max(0, in_use.get(r, 0) + deltas.get(r, 0)) for r in COUNTED}


def fit_count(limits: Mapping[str, int], in_use: Mapping[str, int],
              per_item: Mapping[str, int], max_count: int) -> int:
    """The largest n in [0, max_count] such that n items of `per_item` fit."""
    count = max_count
    for resource, each in per_item.items():
        limit = limits[resource]
        if each > 0 and limit != UNLIMITED:
            count = min(count, max(0, (limit - in_use.get(resource, 0)) // each))
    return count


# ---- reads -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A project's limits and usage, read at one etcd revision."""
    project: str
    overrides: dict[str, int]
    limits: dict[str, int]
    usage: dict[str, int]
    usage_revision: int      # usages/<project> mod_revision, 0 when absent
    overrides_revision: int  # quotas/<project> mod_revision, 0 when absent


async def snapshot(store: Store, project: str) -> Snapshot:
    """Overrides and usage in one round trip (a read-only txn: one revision)."""
    return snapshot_of(project, await store.get_many(snapshot_keys(project)))


def snapshot_keys(project: str) -> dict[str, type]:
    """The records snapshot() reads, for a caller that reads them in its own
    one round trip together with others (Store.get_many)."""
    return {keys.quota(project): quotas_pb2.QuotaSet, keys.usage(project): quotas_pb2.QuotaUsage}


def snapshot_of(project: str, got: Mapping[str, Any]) -> Snapshot:
    """snapshot() from records read with snapshot_keys (key -> Versioned or None)."""
    overrides, used = got[keys.quota(project)], got[keys.usage(project)]
    over = overrides_of(overrides.msg) if overrides else {}
    return Snapshot(project, over, effective(over), usage_of(used.msg if used else None),
                    used.mod_revision if used else 0,
                    overrides.mod_revision if overrides else 0)


async def limits(store: Store, project: str) -> dict[str, int]:
    """Every resource's limit for the project (defaults merged with overrides)."""
    found = await store.get(keys.quota(project), quotas_pb2.QuotaSet)
    return effective(overrides_of(found.msg) if found else {})


async def usage(store: Store, project: str) -> dict[str, int]:
    """In use of each counted resource (zeros for a project that used nothing)."""
    found = await store.get(keys.usage(project), quotas_pb2.QuotaUsage)
    return usage_of(found.msg if found else None)


# ---- consuming and releasing ------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class QuotaPlan:
    """A checked usage change, to be written by the caller's transaction.

    `compares` and `ops` go into the caller's txn; `failure_ops` into its
    failure branch so that `lost(resp)` can tell, without another read,
    whether the txn failed because the usage moved (plan again) or because
    of the caller's own compares. Both lists are empty when nothing changes."""
    store: Store
    project: str
    deltas: dict[str, int]       # as asked (for plan_fit: per_item * count)
    limits: dict[str, int]
    in_use: dict[str, int]       # before
    after: dict[str, int]        # after (releases clamped at 0)
    revision: int                # the usage key's mod_revision read (0: absent)
    count: int = 1               # plan_fit: how many items fit
    compares: list = dataclasses.field(default_factory=list)
    ops: list = dataclasses.field(default_factory=list)

    @property
    def key(self) -> str:
        return keys.usage(self.project)

    @property
    def failure_ops(self) -> list:
        """Put these FIRST in the txn's failure branch (or pass `index`)."""
        return [self.store.get_op(self.key)]

    def lost(self, resp: Any, index: int = 0) -> bool:
        """Given a failed txn with `failure_ops` at `index` of its failure
        branch: True when the usage changed since this plan read it."""
        kvs = resp.responses[index].response_range.kvs
        return (kvs[0].mod_revision if kvs else 0) != self.revision


def _plan(store: Store, snap: Snapshot, deltas: Mapping[str, int], count: int = 1) -> QuotaPlan:
    _counted(deltas)
    over = violations(snap.limits, snap.usage, deltas)
    if over:
        raise errors.QuotaExceeded(snap.project, over)
    after = apply_deltas(snap.usage, deltas)
    plan = QuotaPlan(store, snap.project, dict(deltas), snap.limits, snap.usage, after,
                     snap.usage_revision, count)
    if after != snap.usage:
        plan.compares.append(store.mod_is(plan.key, snap.usage_revision))
        plan.ops.append(store.put(plan.key, quotas_pb2.QuotaUsage(**after)))
    return plan


async def plan(store: Store, project: str, deltas: Mapping[str, int]) -> QuotaPlan:
    """Check and prepare a usage change of counted resources (positive:
    consume, negative: release). Raises errors.QuotaExceeded listing every
    resource over its limit; nothing is written."""
    return _plan(store, await snapshot(store, project), deltas)


def plan_of(store: Store, snap: Snapshot, deltas: Mapping[str, int]) -> QuotaPlan:
    """plan() on a snapshot the caller read (snapshot_of)."""
    return _plan(store, snap, deltas)


async def plan_fit(store: Store, project: str, per_item: Mapping[str, int], min_count: int,
                   max_count: int) -> QuotaPlan:
    """Multi-create: the plan for as many items as fit in [min_count,
    max_count] (`.count`); when not even min_count fit, QuotaExceeded for
    min_count items (Nova's behaviour)."""
    _counted(per_item)
    if not 1 <= min_count <= max_count:
        raise ValueError(f"need 1 <= min_count <= max_count, got {min_count}, {max_count}")
    snap = await snapshot(store, project)
    count = fit_count(snap.limits, snap.usage, per_item, max_count)
    if count < min_count:
        raise errors.QuotaExceeded(project, violations(snap.limits, snap.usage,
                                                       scaled(per_item, min_count)))
    return _plan(store, snap, scaled(per_item, count), count)


async def max_fit(store: Store, project: str, per_item: Mapping[str, int], min_count: int,
                  max_count: int) -> int:
    """How many items fit in [min_count, max_count] now, else QuotaExceeded
    for min_count. Advisory: to consume, use plan_fit (one read, its compare)."""
    return (await plan_fit(store, project, per_item, min_count, max_count)).count


async def apply(store: Store, project: str, deltas: Mapping[str, int],
                compares: Iterable = (), ops: Iterable = (), *,
                attempts: int = ATTEMPTS) -> QuotaPlan:
    """plan() and one txn with the caller's compares and ops, planned again
    while the usage loses races. Raises QuotaExceeded, or
    store.ExtraCompareFailed when one of the caller's compares failed."""
    compares, ops = list(compares), list(ops)
    for _ in range(attempts):
        p = await plan(store, project, deltas)
        if not (p.ops or compares or ops):
            return p    # nothing to write
        resp = await store.txn([*p.compares, *compares], [*p.ops, *ops], p.failure_ops)
        if resp.succeeded:
            return p
        if not p.lost(resp):
            raise ExtraCompareFailed()
    raise errors.Unavailable(f"quota usage of project {project} is too contended; retry")


async def recount_instances(store: Store, project: str, *, attempts: int = ATTEMPTS) -> dict[str, int]:
    """Set instances/cores/ram usage from the project's instance records
    (repair, or a project that had servers before quotas were counted).
    The usage is read before the records and compared on write, so a create
    or delete racing with the recount makes it start over."""
    for _ in range(attempts):
        snap = await snapshot(store, project)
        items, _ = await store.list(keys.INSTANCES, records_pb2.InstanceRecord)
        counted = {"instances": 0, "cores": 0, "ram": 0}
        for _, v in items:
            server = v.msg.server
            if server.project_id == project:
                for r, d in instance_deltas(server.flavor.vcpus, server.flavor.ram_mb).items():
                    counted[r] += d
        after = {**snap.usage, **counted}
        key = keys.usage(project)
        resp = await store.txn([store.mod_is(key, snap.usage_revision)],
                               [store.put(key, quotas_pb2.QuotaUsage(**after))])
        if resp.succeeded:
            return after
    raise errors.Unavailable(f"quota usage of project {project} is too contended; retry")


# ---- limits checked per request ----------------------------------------------

def check(limits: Mapping[str, int], resource: str, value: int, *, project: str, field: str,
          in_use: int = 0) -> None:
    """QuotaExceeded (naming `field`) when in_use + value exceeds the limit."""
    limit = limits[resource]
    if limit != UNLIMITED and in_use + value > limit:
        raise errors.QuotaExceeded(project, [errors.QuotaViolation(resource, limit, in_use, value)],
                                   field=field)


def check_metadata(limits: Mapping[str, int], metadata: Mapping[str, str], *, project: str,
                   field: str = "metadata") -> None:
    check(limits, "metadata_items", len(metadata), project=project, field=field)


def _nbytes(value: bytes | str) -> int:
    return len(value.encode()) if isinstance(value, str) else len(value)


def check_personality(limits: Mapping[str, int], files: Iterable[Any], *, project: str,
                      field: str = "personality") -> None:
    """Injected files (anything with .path and .contents): their number, then
    each path's UTF-8 length, then each content's length (Nova's order)."""
    files = list(files)
    check(limits, "injected_files", len(files), project=project, field=field)
    for i, f in enumerate(files):
        check(limits, "injected_file_path_bytes", _nbytes(f.path), project=project,
              field=f"{field}[{i}].path")
        check(limits, "injected_file_content_bytes", _nbytes(f.contents), project=project,
              field=f"{field}[{i}].contents")


def check_server_group_members(limits: Mapping[str, int], members: int, adding: int, *,
                               project: str, field: str = "scheduler_hints.group") -> None:
    """Adding `adding` servers to a group that has `members` already."""
    check(limits, "server_group_members", adding, project=project, field=field, in_use=members)


# ---- setting limits (admin) --------------------------------------------------

def validate_limits(values: Mapping[str, int], field_prefix: str = "quota_set.") -> None:
    for resource, value in values.items():
        if resource not in DEFAULTS:
            raise errors.InvalidArgument(field_prefix + resource, "is not a quota resource")
        if value < UNLIMITED:
            raise errors.InvalidArgument(field_prefix + resource, "must be -1 (unlimited) or more")
        if value > MAX_LIMIT:
            raise errors.InvalidArgument(field_prefix + resource, f"must be at most {MAX_LIMIT}")


async def set_limits(store: Store, project: str, values: Mapping[str, int], *,
                     force: bool = False, field_prefix: str = "quota_set.",
                     attempts: int = ATTEMPTS) -> Snapshot:
    """Merge `values` into the project's overrides. A limit below the
    current usage is INVALID_ARGUMENT unless `force` (then it only blocks
    new consumption). Returns the snapshot after the change."""
    validate_limits(values, field_prefix)
    key = keys.quota(project)
    for _ in range(attempts):
        snap = await snapshot(store, project)
        if not force:
            for resource, value in values.items():
                used = snap.usage.get(resource, 0)
                if value != UNLIMITED and value < used:
                    raise errors.InvalidArgument(
                        field_prefix + resource,
                        f"limit {value} is below what the project already uses ({used}); "
                        "use force to set it anyway")
        over = {**snap.overrides, **values}
        resp = await store.txn([store.mod_is(key, snap.overrides_revision)],
                               [store.put(key, quotas_pb2.QuotaSet(**over))])
        if resp.succeeded:
            return dataclasses.replace(snap, overrides=over, limits=effective(over),
                                       overrides_revision=resp.header.revision)
    raise errors.Unavailable(f"quotas of project {project} are too contended; retry")


async def delete_limits(store: Store, project: str) -> None:
    """Drop the project's overrides: it follows the defaults again."""
    await store.txn([], [store.delete(keys.quota(project))])
