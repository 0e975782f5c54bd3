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
    store = stack.store
    items, _ = await store.list("allocations/", records_pb2.Allocation)
    out = {(v.msg.host, v.msg.consumer_id): v.msg.resources.memory_mb for _, v in items}
    providers, _ = await store.list("providers/", records_pb2.ProviderUsage)
    for _, usage in providers:
        assert usage.msg.used.memory_mb == sum(mb for (h, _), mb in out.items()
                                               if h == usage.msg.host), (usage.msg, out)
    return out


async def usage(stack) -> tuple[int, int]:
    found = await stack.store.get(keys.usage("demo"), quotas_pb2.QuotaUsage)
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


async def test_resize_and_revert_restores_everything(stack):
    server = await boot(stack)
    source = server.host
    await stack.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
    resized = await stack.wait_for(server.id, settled(RESIZED))
    dest = resized.host
    resp = await stack.api.RevertServerResize(C.RevertServerResizeRequest(id=server.id),
                                              metadata=user())
    assert resp.server.task_state == C.TASK_STATE_RESIZE_REVERTING
    reverted = await stack.wait_for(server.id, settled(ACTIVE))
    assert (reverted.host, reverted.flavor.name) == (source, "m1.tiny")
    assert reverted.power_state == C.POWER_STATE_RUNNING
    assert (await migration_of(stack, server.id)).status == "reverted"
    assert await allocations(stack) == {(source, server.id): 512}
    assert await usage(stack) == (1, 512)
    assert domain(stack, dest, server.id) is None
    assert not os.path.exists(agent_of(stack, dest).driver.instance_dir(server.id))
    src_dir = agent_of(stack, source).driver.instance_dir(server.id)
    assert os.path.exists(os.path.join(src_dir, "disk")) and not os.path.exists(src_dir + "_resize")
    assert domain(stack, source, server.id).info()[1] == 512 * 1024
    await expect(stack.api.RevertServerResize(C.RevertServerResizeRequest(id=server.id),
                                              metadata=user()), grpc.StatusCode.FAILED_PRECONDITION)


async def test_a_stopped_server_resized_stays_stopped(stack):
    server = await boot(stack)
    await stack.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, settled(STOPPED))
    await stack.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
    resized = await stack.wait_for(server.id, settled(RESIZED))
    assert resized.power_state == C.POWER_STATE_SHUTDOWN
    assert domain(stack, resized.host, server.id).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    await stack.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=user())
    confirmed = await stack.wait_for(server.id, settled(STOPPED))
    assert confirmed.flavor.name == "m1.small"


async def test_no_valid_host_leaves_the_server_as_it_was(stack):
    server = await boot(stack)
    await stack.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.big"),
                                 metadata=ADMIN)
    migration = await migration_of(stack, server.id)
    for _ in range(100):
        migration = await migration_of(stack, server.id)
        if migration.status == "error":
            break
        await asyncio.sleep(0.05)
    assert migration.status == "error"
    after = await stack.wait_for(server.id, settled(ACTIVE))
    assert (after.host, after.flavor.name) == (server.host, "m1.tiny") and not after.fault.message
    assert await allocations(stack) == {(server.host, server.id): 512}
    assert await usage(stack) == (1, 512)


@pytest.mark.parametrize("call,code,field", [
    (C.ResizeServerRequest(flavor_ref="m1.tiny"), grpc.StatusCode.INVALID_ARGUMENT, "flavor_ref"),
    (C.ResizeServerRequest(flavor_ref="m1.nope"), grpc.StatusCode.NOT_FOUND, "flavor"),
    (C.ResizeServerRequest(flavor_ref=""), grpc.StatusCode.INVALID_ARGUMENT, "flavor_ref"),
    (C.ConfirmServerResizeRequest(), grpc.StatusCode.FAILED_PRECONDITION, ""),
    (C.RevertServerResizeRequest(), grpc.StatusCode.FAILED_PRECONDITION, ""),
    (C.MigrateServerRequest(), grpc.StatusCode.PERMISSION_DENIED, ""),
])
async def test_moves_refused(stack, call, code, field):
    server = await boot(stack)
    call.id = server.id
    method = type(call).__name__.removesuffix("Request")
    await expect(getattr(stack.api, method)(call, metadata=user()), code, field)
    assert (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=user())
            ).server.task_state == 0


async def test_a_smaller_root_disk_is_refused(stack):
    server = await boot(stack, flavor="m1.small")
    err = await expect(stack.api.ResizeServer(C.ResizeServerRequest(
        id=server.id, flavor_ref="m1.tiny"), metadata=user()), grpc.StatusCode.INVALID_ARGUMENT,
        "flavor_ref")
    assert "never shrunk" in err.details()


async def test_upsize_over_quota(stack):
    from nimbus.compute.v1 import quotas_pb2_grpc
    server = await boot(stack)
    await quotas_pb2_grpc.QuotaServiceStub(stack.channel).UpdateQuotas(quotas_pb2.UpdateQuotasRequest(
        project_id="demo", quota_set=quotas_pb2.QuotaSet(cores=1)), metadata=ADMIN)
    err = await expect(stack.api.ResizeServer(C.ResizeServerRequest(
        id=server.id, flavor_ref="m1.small"), metadata=user()), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "cores" in err.details()
    assert await usage(stack) == (1, 512)


async def test_delete_mid_resize_cleans_both_hosts(stack):
    server = await boot(stack)
    await stack.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
    await stack.wait_for(server.id, lambda s: s.task_state in (
        C.TASK_STATE_RESIZE_MIGRATED, C.TASK_STATE_RESIZE_FINISH) or s.vm_state == RESIZED)
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, lambda s: s is None)
    assert await allocations(stack) == {}
    assert await usage(stack) == (0, 0)
    def leftovers(agent):
        path = agent.driver.instances_path
        return [n for n in (os.listdir(path) if os.path.isdir(path) else ()) if n.startswith(server.id)]
    for agent in stack.agents.agents:
        for _ in range(50):
            if server.id not in await agent.driver.instance_ids() and not leftovers(agent):
                break
            await asyncio.sleep(0.05)
        assert server.id not in await agent.driver.instance_ids()
        assert leftovers(agent) == []


async def test_cold_migration_and_the_admin_list(stack):
    server = await boot(stack)
    resp = await stack.api.MigrateServer(C.MigrateServerRequest(id=server.id), metadata=ADMIN)
    assert resp.migration.migration_type == "migration"
    moved = await stack.wait_for(server.id, settled(RESIZED))
    assert moved.host != server.host and moved.flavor.name == "m1.tiny"
    await stack.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, settled(ACTIVE))
    admin = migrations_pb2_grpc.MigrationServiceStub(stack.channel)
    listed = await admin.ListMigrations(M.ListMigrationsRequest(host=moved.host), metadata=ADMIN)
    assert [(m.server_id, m.status) for m in listed.migrations] == [(server.id, "confirmed")]
    assert (await admin.ListMigrations(M.ListMigrationsRequest(status="error"), metadata=ADMIN)
            ).migrations == []
    await expect(admin.ListMigrations(M.ListMigrationsRequest(), metadata=user()),
                 grpc.StatusCode.PERMISSION_DENIED)


async def test_same_host_resize(etcd, tmp_path, qcow2_image):
    s = await start(etcd, str(tmp_path), qcow2_image, hosts=1, allow_resize_to_same_host=True)
    try:
        server = await boot(s)
        await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
        resized = await s.wait_for(server.id, settled(RESIZED))
        assert resized.host == server.host
        mig = await migration_of(s, server.id)
        assert await allocations(s) == {(server.host, mig.id): 512, (server.host, server.id): 1024}
        await s.api.RevertServerResize(C.RevertServerResizeRequest(id=server.id), metadata=user())
        reverted = await s.wait_for(server.id, settled(ACTIVE))
        assert reverted.flavor.name == "m1.tiny"
        assert await allocations(s) == {(server.host, server.id): 512}
        assert domain(s, server.host, server.id).info()[1] == 512 * 1024
        await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
        await s.wait_for(server.id, settled(RESIZED))
        await s.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=user())
        confirmed = await s.wait_for(server.id, settled(ACTIVE))
        assert domain(s, server.host, server.id).info()[1] == 1024 * 1024   # the new one stays
        assert confirmed.power_state == C.POWER_STATE_RUNNING
        assert await allocations(s) == {(server.host, server.id): 1024}
    finally:
        await s.__aexit__(None, None, None)


async def test_auto_confirm_races_a_users_confirm(etcd, tmp_path, qcow2_image):
    s = await start(etcd, str(tmp_path), qcow2_image, resize_confirm_window=1.0,
                    sweep_interval=0.2)
    try:
        servers = [await boot(s, name=f"a-{i}") for i in range(2)]
        for server in servers:
            await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                     metadata=user())
        for server in servers:
            await s.wait_for(server.id, settled(RESIZED))
        # The first one the user confirms just as the window ends; the second
        # nobody confirms: both end confirmed, each exactly once.
        await asyncio.sleep(0.9)
        try:
            await s.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=servers[0].id),
                                            metadata=user())
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION   # the auto-confirm won
        for server in servers:
            done = await s.wait_for(server.id, settled(ACTIVE))
            assert done.flavor.name == "m1.small"
            assert (await migration_of(s, server.id)).status == "confirmed"
        assert sorted((await allocations(s)).values()) == [1024, 1024]
    finally:
        await s.__aexit__(None, None, None)


@pytest.mark.parametrize("restart", ["conductor", "agents"])
async def test_restarts_mid_resize_leave_nothing_stuck(etcd, tmp_path, qcow2_image, restart):
    from nimbus.services.agent.main import AgentProcess
    s = await start(etcd, str(tmp_path), qcow2_image, hosts=3, node_ttl=3, sweep_interval=0.3)
    try:
        servers = [await boot(s, name=f"m-{i}") for i in range(4)]
        for server in servers:
            await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                     metadata=user())
        moving = [(await s.api.GetServer(C.GetServerRequest(id=v.id), metadata=user())).server
                  for v in servers]
        assert any(m.task_state != 0 for m in moving)   # the restart comes mid-move
        if restart == "conductor":
            await s.conductor.stop()
            await asyncio.sleep(0.3)
            await s.start_conductor()
        else:
            await s.agents.stop()
            s.agents = await AgentProcess(s.cfg).start()
        done = [await s.wait_for(v.id, lambda x: x is not None and x.task_state == 0 and x.vm_state in (
            RESIZED, C.VM_STATE_ERROR), timeout=40) for v in servers]
        assert [d.vm_state for d in done] == [RESIZED] * 4, [d.fault.message for d in done]
        # Every host's allocations are exactly the servers and migrations it holds.
        allocated = await allocations(s)
        for d in done:
            mig = await migration_of(s, d.id)
            assert allocated[(d.host, d.id)] == 1024 and allocated[(mig.source_host, mig.id)] == 512
        assert len(allocated) == 8
    finally:
        await s.__aexit__(None, None, None)


async def test_a_move_whose_host_dies_fails_and_deletes_cleanly(etcd, tmp_path, qcow2_image):
    s = await start(etcd, str(tmp_path), qcow2_image, node_ttl=2, sweep_interval=0.3)
    try:
        server = await boot(s)
        index = next(i for i, a in enumerate(s.agents.agents) if a.host == server.host)
        s.agents.tasks[index].cancel()   # the source dies: no stream, no lease refresh
        await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
        failed = await s.wait_for(server.id, settled(C.VM_STATE_ERROR), timeout=30)
        assert f"compute host {server.host} went down" in failed.fault.message
        assert (await migration_of(s, server.id)).status == "error"
        await s.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
        await s.wait_for(server.id, lambda x: x is None, timeout=30)
        assert await allocations(s) == {}
        assert await usage(s) == (0, 0)
    finally:
        await s.__aexit__(None, None, None)
