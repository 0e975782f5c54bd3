"""The compute agent on the libvirt test driver: what a build leaves on the
host (disks, config drive, libvirt.xml), power-state sync and the
reconciliation of leftovers. Real etcd, real libvirt, real gRPC."""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from nimbus.state.v1 import records_pb2
from stack import ADMIN, C, Stack, user


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1, power_sync_interval=0.2) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


def agent_of(stack, server):
    return next(a for a in stack.agents.agents if a.host == server.host)


async def test_build_lays_out_disks_config_drive_and_xml(stack):
    await stack.api.CreateFlavor(C.CreateFlavorRequest(flavor=C.Flavor(
        name="m1.eph", vcpus=1, ram_mb=512, disk_gb=1, ephemeral_gb=1, swap_mb=256)), metadata=ADMIN)
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="cfg", image_ref="cirros", flavor_ref="m1.eph", config_drive=True,
        user_data=b"#cloud-config\n"), metadata=user())).servers[0]
    done = await stack.wait_settled(server.id)
    assert done.vm_state == C.VM_STATE_ACTIVE and done.config_drive
    inst = agent_of(stack, done).driver.instance_dir(server.id)
    assert sorted(os.listdir(inst)) == ["disk", "disk.config", "disk.eph0", "disk.swap", "libvirt.xml"]
    dom = ET.parse(os.path.join(inst, "libvirt.xml")).getroot()
    targets = {d.find("target").get("dev"): d.get("device") for d in dom.findall("devices/disk")}
    assert targets == {"vda": "disk", "vdb": "disk", "vdc": "disk", "hdd": "cdrom"}
    user_data = subprocess.run(["isoinfo", "-R", "-i", os.path.join(inst, "disk.config"), "-x",
                                "/openstack/latest/user_data"], capture_output=True).stdout
    assert user_data == b"#cloud-config\n"
    # user_data is for the guest: not part of the public Server.
    got = await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=user())
    assert b"cloud-config" not in got.server.SerializeToString()


@pytest.mark.parametrize("behind_our_back, power", [
    ("destroy", C.POWER_STATE_SHUTDOWN),
    ("undefine", C.POWER_STATE_UNSPECIFIED),
])
async def test_power_sync_notices_a_domain_stopped_or_gone(stack, behind_our_back, power):
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="p", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
    done = await stack.wait_settled(server.id)
    agent = agent_of(stack, done)
    dom = agent.driver.conn.lookupByUUIDString(server.id)
    dom.destroy()
    if behind_our_back == "undefine":
        dom.undefine()
    stopped = await stack.wait_for(server.id, lambda s: s.vm_state == C.VM_STATE_STOPPED)
    assert stopped.power_state == power and stopped.task_state == C.TASK_STATE_UNSPECIFIED
    # A stopped server still deletes cleanly.
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, lambda s: s is None)


async def test_leftover_domains_and_dirs_are_removed(stack):
    agent = stack.agents.agents[0]
    orphan = "0c3f5a43-0000-4000-8000-00000000beef"
    os.makedirs(agent.driver.instance_dir(orphan))
    agent.driver.conn.defineXML(
        f"<domain type='test'><name>nimbus-{orphan}</name><uuid>{orphan}</uuid>"
        "<memory>1024</memory><os><type>hvm</type></os></domain>").create()
    await agent._reconcile_domains()
    assert orphan not in await agent.driver.instance_ids()
    assert not os.path.exists(agent.driver.instance_dir(orphan))


async def test_orphaned_allocations_are_released(stack):
    from nimbus.store import keys
    store = stack.conductor.store
    host = stack.agents.agents[0].host
    ghost = "0c3f5a43-0000-4000-8000-00000000f00d"
    await store.txn([], [store.put(keys.allocation(host, ghost), records_pb2.Allocation(
        consumer_id=ghost, host=host, resources=records_pb2.Resources(vcpus=1, memory_mb=512)))])
    usage = await store.get(keys.provider(host), records_pb2.ProviderUsage)
    usage.msg.used.memory_mb += 512
    usage.msg.consumers += 1
    await store.txn([], [store.put(keys.provider(host), usage.msg)])
    await stack.conductor.builds.release_orphaned_allocations()
    assert await store.get(keys.allocation(host, ghost), records_pb2.Allocation) is None
    after = await store.get(keys.provider(host), records_pb2.ProviderUsage)
    assert after.msg.used.memory_mb == usage.msg.used.memory_mb - 512
