"""Volume and snapshot statuses (Cinder's) and the one way records change.

Which statuses an action starts from, and who acts on the status it sets:

    action            from                                  sets        then (volume manager)
    create            -                                     creating    available | error
    extend            available                             extending   available | error_extending
    delete            available, error, error_extending,    deleting    gone | error_deleting
                      error_deleting (and no snapshots)
    snapshot          available (in-use with force)         snapshot creating -> available | error
    delete snapshot   available, error, error_deleting      snapshot deleting -> gone | error_deleting

`transition` is the read -> check -> commit loop every change uses: a CAS
on the record's mod_revision plus the caller's extra compares, with the
quota change in the same transaction (quota.apply).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from nimbus import errors, quota
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.store import ExtraCompareFailed, Store, Versioned, now
from nimbus.volume.v1 import volume_pb2 as V

VS = V.VolumeStatus
SS = V.SnapshotStatus

DELETABLE = (VS.VOLUME_STATUS_AVAILABLE, VS.VOLUME_STATUS_ERROR, VS.VOLUME_STATUS_ERROR_EXTENDING,
             VS.VOLUME_STATUS_ERROR_DELETING)
EXTENDABLE = (VS.VOLUME_STATUS_AVAILABLE,)
SNAPSHOTTABLE = (VS.VOLUME_STATUS_AVAILABLE,)
SNAPSHOTTABLE_FORCED = (VS.VOLUME_STATUS_AVAILABLE, VS.VOLUME_STATUS_IN_USE)
# A source volume is read while the new one is created from it.
CLONABLE = (VS.VOLUME_STATUS_AVAILABLE, VS.VOLUME_STATUS_IN_USE)
SNAPSHOT_DELETABLE = (SS.SNAPSHOT_STATUS_AVAILABLE, SS.SNAPSHOT_STATUS_ERROR,
                      SS.SNAPSHOT_STATUS_ERROR_DELETING)
# Statuses the volume manager acts on.
VOLUME_WORK = (VS.VOLUME_STATUS_CREATING, VS.VOLUME_STATUS_EXTENDING, VS.VOLUME_STATUS_DELETING)
SNAPSHOT_WORK = (SS.SNAPSHOT_STATUS_CREATING, SS.SNAPSHOT_STATUS_DELETING)


def volume_status(status: int) -> str:
    """Cinder's spelling: available, in-use, error_deleting, ..."""
    if status == VS.VOLUME_STATUS_IN_USE:
        return "in-use"
    return VS.Name(status).removeprefix("VOLUME_STATUS_").lower()


def snapshot_status(status: int) -> str:
    return SS.Name(status).removeprefix("SNAPSHOT_STATUS_").lower()


def names(statuses, name=volume_status) -> str:
    return ", ".join(name(s) for s in statuses)


def require_volume_status(volume: V.Volume, allowed, action: str) -> None:
    """FAILED_PRECONDITION naming the volume's status and the allowed ones."""
    if volume.status not in allowed:
        raise errors.FailedPrecondition(
            f"cannot {action} volume {volume.id}: its status is {volume_status(volume.status)}, "
            f"it must be {names(allowed)}")


def require_snapshot_status(snap: V.Snapshot, allowed, action: str) -> None:
    if snap.status not in allowed:
        raise errors.FailedPrecondition(
            f"cannot {action} snapshot {snap.id}: its status is {snapshot_status(snap.status)}, "
            f"it must be {names(allowed, snapshot_status)}")


def snapshot_deltas(size_gb: int, count: int = 1) -> dict[str, int]:
    """A snapshot counts in snapshots and in gigabytes (Cinder's default)."""
    return {"snapshots": count, "gigabytes": size_gb * count}


@dataclasses.dataclass
class Change:
    """What a step decided: the new record (None: delete it), the project's
    quota deltas, and more (compares, ops) for the same transaction."""
    new: object | None
    project: str = ""
    deltas: dict = dataclasses.field(default_factory=dict)
    compares: list = dataclasses.field(default_factory=list)
    ops: list = dataclasses.field(default_factory=list)


async def transition(store: Store, key: str, cls, step: Callable, *,
                     not_found: errors.NimbusError):
    """Read the record, let `step(copy)` check it (raise to refuse) and
    return a Change, commit it in one transaction that compares the
    record's mod_revision (and the Change's compares); on a lost race read
    again. `step` may be async. Returns the written record (None: deleted)."""
    for _ in range(quota.ATTEMPTS):
        got = await store.get(key, cls)
        if got is None:
            raise not_found
        copy = cls()
        copy.CopyFrom(got.msg)
        change = step(copy)
        if hasattr(change, "__await__"):
            change = await change
        op = store.delete(key) if change.new is None else store.put(key, change.new)
        compares = [store.mod_is(key, got.mod_revision), *change.compares]
        ops = [op, *change.ops]
        if not change.deltas:
            if (await store.txn(compares, ops)).succeeded:
                return change.new
            continue
        try:
            await quota.apply(store, change.project, change.deltas, compares=compares, ops=ops)
        except ExtraCompareFailed:
            continue
        return change.new
    raise errors.Unavailable(f"{key} is changing too fast; retry")


def touch(volume: V.Volume) -> None:
    volume.updated_at.CopyFrom(now())


async def get_volume(store: Store, volume_id: str, who=None) -> Versioned:
    """The volume record; NOT_FOUND unless `who` may see it (its project, or
    an admin/service), so ids of other projects are not confirmed."""
    got = await store.get(keys.volume(volume_id), R.VolumeRecord) if volume_id else None
    if got is None or (who is not None and not who.is_admin
                       and got.msg.volume.project_id != who.project_id):
        raise errors.NotFound("volume", volume_id)
    return got


async def get_snapshot(store: Store, snapshot_id: str, who=None) -> Versioned:
    got = await store.get(keys.snapshot(snapshot_id), R.SnapshotRecord) if snapshot_id else None
    if got is None or (who is not None and not who.is_admin
                       and got.msg.snapshot.project_id != who.project_id):
        raise errors.NotFound("snapshot", snapshot_id)
    return got
