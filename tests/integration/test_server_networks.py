"""Servers on networks: ports with an address and a MAC allocated at
NETWORKING (through the conductor), a bridge interface in the domain, the
config drive's network_data.json, release on delete, and a small subnet
running out: a clean ERROR and nothing leaked."""

import asyncio
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from nimbus.compute.v1 import networks_pb2 as N
from nimbus.compute.v1 import networks_pb2_grpc
from stack import C, Stack, user

ME = user("nina", "netproj")


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.net = networks_pb2_grpc.NetworkServiceStub(s.channel)
        network = (await s.net.CreateNetwork(N.CreateNetworkRequest(name="n1"), metadata=ME)).network
        await s.net.CreateSubnet(N.CreateSubnetRequest(network_id=network.id, cidr="10.9.0.0/29"),
                                 metadata=ME)
        s.network = network
        yield s


async def ports_gone(stack, timeout: float = 10) -> bool:
    """Ports are released right after the server record goes (so that a late
    allocation can never recreate them): a moment after the DELETED event."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await ports_of(stack):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def ports_of(stack) -> list:
    return list((await stack.net.ListPorts(N.ListPortsRequest(network_id=stack.network.id),
                                           metadata=ME)).ports)


async def test_server_gets_a_port_an_interface_and_network_data(stack):
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="n", image_ref="cirros", flavor_ref="m1.tiny", config_drive=True,
        networks=[C.NetworkRequest(uuid=stack.network.id)]), metadata=ME)).servers[0]
    done = await stack.wait_settled(server.id)
    assert done.vm_state == C.VM_STATE_ACTIVE, done.fault
    [port] = await ports_of(stack)
    assert port.device_id == server.id
    inst = next(a for a in stack.agents.agents if a.host == done.host).driver.instance_dir(server.id)
    iface = ET.parse(os.path.join(inst, "libvirt.xml")).getroot().find("devices/interface")
    assert iface.find("mac").get("address") == port.mac_address
    assert iface.find("source").get("bridge").startswith("br-")
    # Nova's addresses: network name -> the port's fixed addresses, in Get and List.
    want = C.AddressList(addresses=[C.Address(addr=port.fixed_ips[0].ip_address, version=4,
                                              mac=port.mac_address, type="fixed")])
    got = (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=ME)).server
    assert dict(got.addresses) == {"n1": want}
    listed = (await stack.api.ListServers(C.ListServersRequest(), metadata=ME)).servers
    assert dict(listed[0].addresses) == {"n1": want}
    data = json.loads(subprocess.run(["isoinfo", "-R", "-i", os.path.join(inst, "disk.config"), "-x",
                                      "/openstack/latest/network_data.json"],
                                     capture_output=True).stdout)
    assert data["links"][0]["ethernet_mac_address"] == port.mac_address
    assert data["networks"][0]["ip_address"] == port.fixed_ips[0].ip_address
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=ME)
    await stack.wait_for(server.id, lambda s: s is None)
    assert await ports_gone(stack)


async def test_a_full_subnet_fails_builds_cleanly(stack):
    # A /29 holds 5 addresses once the gateway is taken: 5 servers fit, 2 do not.
    calls = [stack.api.CreateServer(C.CreateServerRequest(
        name=f"x{i}", image_ref="cirros", flavor_ref="m1.tiny",
        networks=[C.NetworkRequest(uuid=stack.network.id)]), metadata=ME) for i in range(7)]
    ids = [r.servers[0].id for r in await asyncio.gather(*calls)]
    done = await asyncio.gather(*(stack.wait_settled(i) for i in ids))
    errors = [d for d in done if d.vm_state == C.VM_STATE_ERROR]
    assert sum(d.vm_state == C.VM_STATE_ACTIVE for d in done) == 5 and len(errors) == 2
    assert all("No more IP addresses" in d.fault.message for d in errors)
    assert len(await ports_of(stack)) == 5
    for d in done:
        await stack.api.DeleteServer(C.DeleteServerRequest(id=d.id), metadata=ME)
    for d in done:
        await stack.wait_for(d.id, lambda s: s is None)
    assert await ports_gone(stack)
    store = stack.conductor.store
    assert await store.count("ips/") == 0 and await store.count("macs/") == 0
    assert await store.count("allocations/") == 0
