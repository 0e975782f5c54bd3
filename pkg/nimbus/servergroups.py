"""Server groups as the create and delete paths use them: read a group,
and add or remove members inside the caller's etcd transaction (the
compare on the group's mod_revision makes a concurrent change or delete
fail the transaction, and the caller reads again)."""

from __future__ import annotations

from typing import Iterable

from aetcd import rpc

from nimbus.ids import is_uuid
from nimbus import errors
from nimbus.compute.v1 import server_groups_pb2 as G
from nimbus.store import keys
from nimbus.store.store import Store, Versioned

SG = G.ServerGroup
POLICIES = (SG.POLICY_AFFINITY, SG.POLICY_ANTI_AFFINITY, SG.POLICY_SOFT_AFFINITY,
            SG.POLICY_SOFT_ANTI_AFFINITY)
# Nova's policy names (the API strings), for messages and the scheduler.
POLICY_NAMES = {SG.POLICY_AFFINITY: "affinity", SG.POLICY_ANTI_AFFINITY: "anti-affinity",
                SG.POLICY_SOFT_AFFINITY: "soft-affinity",
                SG.POLICY_SOFT_ANTI_AFFINITY: "soft-anti-affinity"}


async def get_server_group(store: Store, project_id: str, group_id: str) -> Versioned:
    """The project's group with its mod_revision, or NOT_FOUND server_group."""
    found = None
    if is_uuid(group_id):
        found = await store.get(keys.server_group(project_id, group_id), G.ServerGroup)
    if found is None or found.msg.project_id != project_id:
        raise errors.NotFound("server_group", group_id)
    return found


def add_members(store: Store, group: Versioned,
                instance_ids: Iterable[str]) -> tuple[list[rpc.Compare], list[rpc.RequestOp]]:
    """(compares, ops) that add `instance_ids` to `group` (as read by
    get_server_group) inside the caller's etcd transaction. Ids already in
    the group are not added twice. The compare pins the group's
    mod_revision: if the transaction fails on it, read the group again and
    recompute (the policy check included)."""
    updated = G.ServerGroup()
    updated.CopyFrom(group.msg)
    present = set(updated.members)
    for instance_id in instance_ids:
        if instance_id not in present:
            updated.members.append(instance_id)
            present.add(instance_id)
    key = keys.server_group(updated.project_id, updated.id)
    return [store.mod_is(key, group.mod_revision)], [store.put(key, updated)]


def remove_members(store: Store, group: Versioned,
                   instance_ids: Iterable[str]) -> tuple[list[rpc.Compare], list[rpc.RequestOp]]:
    """(compares, ops) that remove `instance_ids` from `group`, for the
    caller's transaction (the instance delete); same compare as add_members."""
    gone = set(instance_ids)
    updated = G.ServerGroup()
    updated.CopyFrom(group.msg)
    kept = [m for m in updated.members if m not in gone]
    del updated.members[:]
    updated.members.extend(kept)
    key = keys.server_group(updated.project_id, updated.id)
    return [store.mod_is(key, group.mod_revision)], [store.put(key, updated)]


def policy_name(policy: int) -> str:
    return POLICY_NAMES.get(policy, "")


async def leave(store: Store, project_id: str, group_id: str,
                instance_id: str) -> tuple[list[rpc.Compare], list[rpc.RequestOp]]:
    """(compares, ops) taking a deleted server out of its group, for the
    delete's transaction; nothing when it had no group or the group is gone."""
    if not group_id:
        return [], []
    try:
        group = await get_server_group(store, project_id, group_id)
    except errors.NotFound:
        return [], []
    return remove_members(store, group, [instance_id])
