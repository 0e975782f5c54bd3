import asyncio
import os

import grpc
import pytest

from stack import ADMIN, C, Stack, user


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2) as s:
        s.tiny = await s.flavor("m1.tiny")
        s.cirros = await s.image(qcow2_image)
        yield s


async def test_boot_reaches_active_and_delete_cleans_up(stack):
    me = user()
    resp = await stack.api.CreateServer(C.CreateServerRequest(
        name="web-1", image_ref="cirros", flavor_ref="m1.tiny"), metadata=me)
    server = resp.servers[0]
    assert (server.vm_state, server.task_state) == (C.VM_STATE_BUILDING, C.TASK_STATE_SCHEDULING)
    active = await stack.wait_settled(server.id)
    assert active.vm_state == C.VM_STATE_ACTIVE, active.fault
    assert active.power_state == C.POWER_STATE_RUNNING and active.host
    got = (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=me)).server
    assert got.vm_state == C.VM_STATE_ACTIVE and got.launched_at.seconds > 0

    agent = next(a for a in stack.agents.agents if a.host == active.host)
    inst_dir = agent.driver.instance_dir(server.id)
    assert os.path.exists(os.path.join(inst_dir, "disk"))
    assert os.path.exists(os.path.join(inst_dir, "libvirt.xml"))
    assert server.id in await agent.driver.instance_ids()

    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    await stack.wait_for(server.id, lambda s: s is None)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=me)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert server.id not in await agent.driver.instance_ids()
    assert not os.path.exists(inst_dir)
    store = stack.conductor.store
    assert await store.get(f"allocations/{active.host}/{server.id}", object) is None
