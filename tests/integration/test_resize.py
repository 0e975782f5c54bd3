"""Resize with confirm and revert, cold migration, on 2-3 simulated hosts:
real etcd, the libvirt test driver, the disks sent host to host through the
conductor, real gRPC."""

import asyncio
import os

import grpc
import libvirt
import pytest

from nimbus.compute.v1 import migrations_pb2 as M, migrations_pb2_grpc, quotas_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from stack import ADMIN, C, Stack, expect, user

RESIZED, ACTIVE, STOPPED = C.VM_STATE_RESIZED, C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED


async def start(etcd, path, qcow2_image, hosts=2, **kw) -> Stack:
    s = await Stack(etcd.endpoint, path, hosts=hosts, memory_mb=4096, **kw).__aenter__()
    await s.flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    await s.flavor("m1.small", vcpus=2, ram_mb=1024, disk_gb=2)
    await s.flavor("m1.big", vcpus=1, ram_mb=8192, disk_gb=2)     # no host holds it
    await s.image(qcow2_image)
    return s


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    s = await start(etcd, str(tmp_path), qcow2_image)
    yield s
    await s.__aexit__(None, None, None)


def settled(vm_state):
    return lambda s: s is not None and s.task_state == 0 and s.vm_state == vm_state


async def boot(stack, name="r-1", flavor="m1.tiny") -> C.Server:
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name=name, image_ref="cirros", flavor_ref=flavor), metadata=user())).servers[0]
    return await stack.wait_for(server.id, settled(ACTIVE))


async def allocations(stack) -> dict:
    """(host, consumer) -> MB of RAM, and every host's usage equals its sum."""
    store = stack.conductor.store
    items, _ = await store.list("allocations/", records_pb2.Allocation)
    out = {(v.msg.host, v.msg.consumer_id): v.msg.resources.memory_mb for _, v in items}
    providers, _ = await store.list("providers/", records_pb2.ProviderUsage)
    for _, usage in providers:
        assert usage.msg.used.memory_mb == sum(mb for (h, _), mb in out.items()
                                               if h == usage.msg.host), (usage.msg, out)
    return out


async def usage(stack) -> tuple[int, int]:
    found = await stack.conductor.store.get(keys.usage("demo"), quotas_pb2.QuotaUsage)
    return found.msg.cores, found.msg.ram


def agent_of(stack, host):
    return next(a for a in stack.agents.agents if a.host == host)


def domain(stack, host, server_id):
    try:
        return agent_of(stack, host).driver.conn.lookupByUUIDString(server_id)
    except libvirt.libvirtError:
        return None


async def migration_of(stack, server_id) -> C.Migration:
    resp = await stack.api.ListServerMigrations(C.ListServerMigrationsRequest(id=server_id),
                                                metadata=user())
    return resp.migrations[-1]


async def test_resize_and_confirm(stack):
    server = await boot(stack)
    source = server.host
    assert await usage(stack) == (1, 512)
    resp = await stack.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                        metadata=user())
    assert resp.server.task_state == C.TASK_STATE_RESIZE_PREP
    assert resp.migration.status == "pre-migrating" and resp.migration.source_host == source
    assert await usage(stack) == (2, 1024)          # the upsize is charged at once
    resized = await stack.wait_for(server.id, settled(RESIZED))
    dest = resized.host
    assert dest != source and resized.flavor.name == "m1.small"
    assert resized.power_state == C.POWER_STATE_RUNNING
    migration = await migration_of(stack, server.id)
    assert (migration.status, migration.dest_host) == ("finished", dest)
    assert await allocations(stack) == {(source, migration.id): 512, (dest, server.id): 1024}
    assert domain(stack, dest, server.id).info()[1] == 1024 * 1024        # KiB
    inst = agent_of(stack, dest).driver.instance_dir(server.id)
    assert os.path.exists(os.path.join(inst, "disk"))
    assert os.path.isdir(agent_of(stack, source).driver.instance_dir(server.id) + "_resize")

    await stack.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=user())
    confirmed = await stack.wait_for(server.id, settled(ACTIVE))
    assert confirmed.host == dest and confirmed.flavor.name == "m1.small"
    assert (await migration_of(stack, server.id)).status == "confirmed"
    assert await allocations(stack) == {(dest, server.id): 1024}
    assert await usage(stack) == (2, 1024)
    assert domain(stack, source, server.id) is None
    assert not os.path.exists(agent_of(stack, source).driver.instance_dir(server.id) + "_resize")
    # A second confirm is refused, never a second cleanup.
    await expect(stack.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id),
                                               metadata=user()), grpc.StatusCode.FAILED_PRECONDITION)
