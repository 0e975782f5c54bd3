"""Removing an instance record, shared by the API's local delete and the
conductor's finish_delete."""

from __future__ import annotations

from nimbus import migrations, quota, servergroups
from nimbus.store import keys
from nimbus.store.store import Store, Versioned


async def removal(store: Store, current: Versioned) -> tuple[list, list]:
    """(compares, ops) removing the instance record `current` together with
    what must agree with it: its actions, its quota usage and its server
    group membership. They join the caller's transaction (or its claim
    release); when that fails, read the record again and call again. Ports
    are released after the record is gone (ipam.release_for_server)."""
    server = current.msg.server
    vcpus, ram_mb = migrations.charged(current.msg)   # a moving server holds both flavors' max
    plan = await quota.plan(store, server.project_id, quota.instance_deltas(vcpus, ram_mb, -1))
    g_compares, g_ops = await servergroups.leave(store, server.project_id, server.server_group,
                                                 server.id)
    ikey = keys.instance(server.id)
    return ([store.mod_is(ikey, current.mod_revision), *plan.compares, *g_compares],
            [*record_deletes(store, server.id), *plan.ops, *g_ops])


def record_deletes(store: Store, instance_id: str) -> list:
    """The ops removing an instance's record and the keys that live and die
    with it: its actions and its build inputs."""
    return [store.delete(keys.instance(instance_id)),
            store.delete(keys.action(instance_id, ""), prefix=True),
            store.delete(keys.build_inputs(instance_id))]
