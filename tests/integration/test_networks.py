"""Networks, subnets and ports through real gRPC on a real stack (etcd, the
API): CRUD, visibility, in-use refusals, IPAM exhaustion of a small subnet
under concurrent creates, and a table of bad requests -> exact status and
field, each leaving nothing behind."""

import asyncio
import ipaddress
import uuid

import grpc
import pytest

from nimbus import ipam
from nimbus.compute.v1 import compute_pb2
from nimbus.compute.v1 import networks_pb2 as N
from nimbus.compute.v1 import networks_pb2_grpc
from nimbus.store import keys
from stack import ADMIN, Stack, expect, user

CODE = grpc.StatusCode
INV, NF, AE, FP, PD, RE = (CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.ALREADY_EXISTS,
                           CODE.FAILED_PRECONDITION, CODE.PERMISSION_DENIED,
                           CODE.RESOURCE_EXHAUSTED)
NOPE = "00000000-0000-4000-8000-000000000000"




@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory):
    s = Stack(etcd.endpoint, str(tmp_path_factory.mktemp("networks")), hosts=1)
    await s.__aenter__()
    s.net = networks_pb2_grpc.NetworkServiceStub(s.channel)
    s.store = s.compute.store
    yield s
    await s.__aexit__(None, None, None)


def project() -> str:
    return "p-" + uuid.uuid4().hex[:8]


async def counts(store) -> dict:
    return {name: await store.count(prefix) for name, prefix in (
        ("networks", keys.NETWORKS), ("subnets", keys.SUBNETS), ("ports", keys.PORTS),
        ("ips", keys.IPS), ("macs", keys.MACS), ("network-ports", keys.NETWORK_PORTS))}


# ---- CRUD ---------------------------------------------------------------------------------

async def test_network_subnet_port_lifecycle(stack):
    net_api, me = stack.net, user("alice", project())
    network = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="  blue "),
                                           metadata=me)).network
    assert (network.name, network.mtu, network.shared, list(network.subnets)) == (
        "blue", 1500, False, [])
    assert (await net_api.GetNetwork(N.GetNetworkRequest(id=network.id),
                                     metadata=me)).network == network

    subnet = (await net_api.CreateSubnet(N.CreateSubnetRequest(
        network_id=network.id, name="blue-v4", cidr="10.77.0.9/24",
        dns_nameservers=["9.9.9.9"]), metadata=me)).subnet
    assert (subnet.cidr, subnet.ip_version, subnet.gateway_ip, subnet.project_id) == (
        "10.77.0.0/24", 4, "10.77.0.1", network.project_id)
    assert [(p.start, p.end) for p in subnet.allocation_pools] == [("10.77.0.2", "10.77.0.254")]
    v6 = (await net_api.CreateSubnet(N.CreateSubnetRequest(
        network_id=network.id, cidr="fd00:77::/64", gateway_ip=""), metadata=me)).subnet
    assert (v6.ip_version, v6.gateway_ip) == (6, "")
    network = (await net_api.GetNetwork(N.GetNetworkRequest(id=network.id), metadata=me)).network
    assert list(network.subnets) == [subnet.id, v6.id]
    listed = (await net_api.ListSubnets(N.ListSubnetsRequest(network_id=network.id),
                                        metadata=me)).subnets
    assert [s.id for s in listed] == [subnet.id, v6.id]
    assert {s.id for s in (await net_api.ListSubnets(N.ListSubnetsRequest(),
                                                     metadata=me)).subnets} == {subnet.id, v6.id}

    port = (await net_api.CreatePort(N.CreatePortRequest(network_id=network.id, name="p1"),
                                     metadata=me)).port
    assert [(f.subnet_id, f.ip_address) for f in port.fixed_ips] == [
        (subnet.id, "10.77.0.2"), (v6.id, "fd00:77::1")]
    assert port.mac_address.startswith("fa:16:3e:") and port.status == N.Port.STATUS_DOWN
    assert list(port.security_groups) == ["default"] and port.preserve_on_delete
    fixed = (await net_api.CreatePort(N.CreatePortRequest(
        network_id=network.id, mac_address="fa:16:3e:aa:bb:cc",
        fixed_ips=[N.FixedIp(ip_address="10.77.0.200")]), metadata=me)).port
    assert [f.ip_address for f in fixed.fixed_ips] == ["10.77.0.200"]
    assert fixed.mac_address == "fa:16:3e:aa:bb:cc"
    ports = (await net_api.ListPorts(N.ListPortsRequest(network_id=network.id),
                                     metadata=me)).ports
    assert {p.id for p in ports} == {port.id, fixed.id}

    renamed = (await net_api.UpdateNetwork(N.UpdateNetworkRequest(id=network.id, name="green"),
                                           metadata=me)).network
    assert renamed.name == "green" and list(renamed.subnets) == [subnet.id, v6.id]
    assert (await net_api.UpdateSubnet(N.UpdateSubnetRequest(id=subnet.id, name="g4"),
                                       metadata=me)).subnet.name == "g4"
    assert (await net_api.UpdatePort(N.UpdatePortRequest(id=port.id, name="eth0"),
                                     metadata=me)).port.name == "eth0"

    # In use: the network has ports, the subnets have addresses.
    await expect(net_api.DeleteNetwork(N.DeleteNetworkRequest(id=network.id), metadata=me), FP)
    await expect(net_api.DeleteSubnet(N.DeleteSubnetRequest(id=subnet.id), metadata=me), FP)
    for p in (port, fixed):
        await net_api.DeletePort(N.DeletePortRequest(id=p.id), metadata=me)
    await expect(net_api.GetPort(N.GetPortRequest(id=port.id), metadata=me), NF, "port")
    await net_api.DeleteSubnet(N.DeleteSubnetRequest(id=v6.id), metadata=me)
    network = (await net_api.GetNetwork(N.GetNetworkRequest(id=network.id), metadata=me)).network
    assert list(network.subnets) == [subnet.id]
    await net_api.DeleteNetwork(N.DeleteNetworkRequest(id=network.id), metadata=me)
    await expect(net_api.GetNetwork(N.GetNetworkRequest(id=network.id), metadata=me), NF,
                 "network")
    await expect(net_api.GetSubnet(N.GetSubnetRequest(id=subnet.id), metadata=me), NF, "subnet")
    for suffix in (keys.network(network.id), keys.subnet(subnet.id), keys.port(port.id),
                   keys.subnet_ips(subnet.id), keys.network_ports(network.id)):
        assert await stack.store.count(suffix) == 0, suffix


async def test_visibility_and_shared_networks(stack):
    net_api = stack.net
    a, b = user("alice", project()), user("bob", project())
    mine = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="a-net"), metadata=a)).network
    shared = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="public", shared=True),
                                          metadata=ADMIN)).network
    await net_api.CreateSubnet(N.CreateSubnetRequest(network_id=shared.id, cidr="172.30.0.0/24"),
                               metadata=ADMIN)
    seen_by_b = {n.id for n in (await net_api.ListNetworks(N.ListNetworksRequest(),
                                                           metadata=b)).networks}
    assert shared.id in seen_by_b and mine.id not in seen_by_b
    admin_sees = {n.id for n in (await net_api.ListNetworks(N.ListNetworksRequest(),
                                                            metadata=ADMIN)).networks}
    assert {shared.id, mine.id} <= admin_sees
    await expect(net_api.GetNetwork(N.GetNetworkRequest(id=mine.id), metadata=b), NF, "network")
    # b uses the shared network but cannot change it.
    port = (await net_api.CreatePort(N.CreatePortRequest(network_id=shared.id), metadata=b)).port
    assert port.project_id != shared.project_id
    await expect(net_api.CreateSubnet(N.CreateSubnetRequest(network_id=shared.id,
                                                            cidr="172.31.0.0/24"), metadata=b), PD)
    await expect(net_api.UpdateNetwork(N.UpdateNetworkRequest(id=shared.id, name="x"),
                                       metadata=b), PD)
    await expect(net_api.DeleteNetwork(N.DeleteNetworkRequest(id=shared.id), metadata=b), PD)
    # a sees neither b's port nor its addresses.
    await expect(net_api.GetPort(N.GetPortRequest(id=port.id), metadata=a), NF, "port")
    assert port.id not in {p.id for p in (await net_api.ListPorts(
        N.ListPortsRequest(network_id=shared.id), metadata=a)).ports}
    await net_api.DeletePort(N.DeletePortRequest(id=port.id), metadata=b)
    await net_api.DeleteNetwork(N.DeleteNetworkRequest(id=shared.id), metadata=ADMIN)
    await net_api.DeleteNetwork(N.DeleteNetworkRequest(id=mine.id), metadata=a)


async def test_small_subnet_exhaustion_under_concurrent_ports(stack):
    """A /29 holds 5 ports: 12 concurrent CreatePorts give 5 ports with
    distinct addresses and MACs, 7 clean RESOURCE_EXHAUSTED, nothing leaked."""
    net_api, me = stack.net, user("alice", project())
    network = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="tiny"),
                                           metadata=me)).network
    subnet = (await net_api.CreateSubnet(N.CreateSubnetRequest(
        network_id=network.id, cidr="192.168.50.0/29"), metadata=me)).subnet
    results = await asyncio.gather(*(
        net_api.CreatePort(N.CreatePortRequest(network_id=network.id), metadata=me)
        for _ in range(12)), return_exceptions=True)
    ports = [r.port for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(ports) == 5 and len(failed) == 7
    for err in failed:
        assert err.code() == RE
        assert err.details() == f"No more IP addresses available on subnet {subnet.id}."
    addresses = sorted((p.fixed_ips[0].ip_address for p in ports), key=ipaddress.ip_address)
    assert addresses == [f"192.168.50.{i}" for i in range(2, 7)]
    assert len({p.mac_address for p in ports}) == 5
    assert await stack.store.count(keys.subnet_ips(subnet.id)) == 5
    assert await stack.store.count(keys.network_ports(network.id)) == 5
    for p in ports:
        assert await stack.store.count(keys.mac(p.mac_address)) == 1
    # Freed addresses are handed out again.
    await net_api.DeletePort(N.DeletePortRequest(id=ports[0].id), metadata=me)
    again = (await net_api.CreatePort(N.CreatePortRequest(network_id=network.id),
                                      metadata=me)).port
    assert again.fixed_ips[0].ip_address == ports[0].fixed_ips[0].ip_address
    for p in [*ports[1:], again]:
        await net_api.DeletePort(N.DeletePortRequest(id=p.id), metadata=me)
    await net_api.DeleteNetwork(N.DeleteNetworkRequest(id=network.id), metadata=me)
    assert await stack.store.count(keys.subnet_ips(subnet.id)) == 0


async def test_bound_port_cannot_be_deleted_and_server_release(stack):
    """The build path (nimbus.ipam, called by the conductor) binds a port;
    the API then refuses to delete it until the server releases it."""
    net_api, p = stack.net, project()
    me = user("alice", p)
    network = (await net_api.CreateNetwork(N.CreateNetworkRequest(), metadata=me)).network
    await net_api.CreateSubnet(N.CreateSubnetRequest(network_id=network.id, cidr="10.88.0.0/24"),
                               metadata=me)
    port = (await net_api.CreatePort(N.CreatePortRequest(network_id=network.id),
                                     metadata=me)).port
    server_id = str(uuid.uuid4())
    vifs = await ipam.allocate_for_server(
        stack.store, server_id, p, [compute_pb2.NetworkRequest(port=port.id),
                                    compute_pb2.NetworkRequest(uuid=network.id)],
        require_instance=False)
    assert [v.port_id for v in vifs][0] == port.id and len(vifs) == 2
    bound = (await net_api.ListPorts(N.ListPortsRequest(device_id=server_id), metadata=me)).ports
    assert {b.id for b in bound} == {v.port_id for v in vifs}
    assert all(b.status == N.Port.STATUS_ACTIVE for b in bound)
    await expect(net_api.DeletePort(N.DeletePortRequest(id=port.id), metadata=me), FP)
    await expect(net_api.DeleteNetwork(N.DeleteNetworkRequest(id=network.id), metadata=me), FP)
    await ipam.release_for_server(stack.store, server_id)
    left = (await net_api.ListPorts(N.ListPortsRequest(network_id=network.id), metadata=me)).ports
    assert [(x.id, x.device_id, x.status) for x in left] == [(port.id, "", N.Port.STATUS_DOWN)]
    await net_api.DeletePort(N.DeletePortRequest(id=port.id), metadata=me)
    await net_api.DeleteNetwork(N.DeleteNetworkRequest(id=network.id), metadata=me)


# ---- the table of bad requests ------------------------------------------------------------------

TABLE_PROJECT = "net-tbl"
ME = user("alice", TABLE_PROJECT)
OTHER = user("bob", "net-tbl-other")


@pytest.fixture(scope="module")
async def ids(stack):
    """Records the table's requests refer to (made once)."""
    net_api = stack.net
    network = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="tbl"),
                                           metadata=ME)).network
    subnet = (await net_api.CreateSubnet(N.CreateSubnetRequest(
        network_id=network.id, cidr="10.99.0.0/24",
        allocation_pools=[N.AllocationPool(start="10.99.0.10", end="10.99.0.100")]),
        metadata=ME)).subnet
    other_net = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="tbl-2"),
                                             metadata=ME)).network
    other_subnet = (await net_api.CreateSubnet(N.CreateSubnetRequest(
        network_id=other_net.id, cidr="10.98.0.0/24"), metadata=ME)).subnet
    shared = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="tbl-shared", shared=True),
                                          metadata=ADMIN)).network
    port = (await net_api.CreatePort(N.CreatePortRequest(
        network_id=network.id, fixed_ips=[N.FixedIp(ip_address="10.99.0.50")]),
        metadata=ME)).port
    bob_net = (await net_api.CreateNetwork(N.CreateNetworkRequest(name="bob"),
                                           metadata=OTHER)).network
    # The first port of a project writes its default security group: done here.
    await net_api.CreatePort(N.CreatePortRequest(network_id=shared.id), metadata=OTHER)
    yield {"net": network.id, "subnet": subnet.id, "net2": other_net.id,
           "subnet2": other_subnet.id, "shared": shared.id, "port": port.id,
           "mac": port.mac_address, "bob_net": bob_net.id}


def sub(**kw):
    return lambda i: N.CreateSubnetRequest(network_id=i["net"], **kw)


def prt(**kw):
    return lambda i: N.CreatePortRequest(network_id=i["net"], **kw)


def fip(ip_address="", subnet_id=""):
    return N.FixedIp(ip_address=ip_address, subnet_id=subnet_id)


BAD = [
    # networks
    ("net-name-long", "CreateNetwork", N.CreateNetworkRequest(name="x" * 256), ME, INV, "name"),
    ("net-name-ctl", "CreateNetwork", N.CreateNetworkRequest(name="a\x01b"), ME, INV, "name"),
    ("net-mtu-low", "CreateNetwork", N.CreateNetworkRequest(mtu=67), ME, INV, "mtu"),
    ("net-mtu-high", "CreateNetwork", N.CreateNetworkRequest(mtu=9001), ME, INV, "mtu"),
    ("net-mtu-neg", "CreateNetwork", N.CreateNetworkRequest(mtu=-5), ME, INV, "mtu"),
    ("net-shared-user", "CreateNetwork", N.CreateNetworkRequest(shared=True), ME, PD, ""),
    ("net-get-empty", "GetNetwork", N.GetNetworkRequest(), ME, INV, "id"),
    ("net-get-unknown", "GetNetwork", N.GetNetworkRequest(id=NOPE), ME, NF, "network"),
    ("net-get-malformed", "GetNetwork", N.GetNetworkRequest(id="../x"), ME, NF, "network"),
    ("net-get-other-project", "GetNetwork", lambda i: N.GetNetworkRequest(id=i["bob_net"]), ME,
     NF, "network"),
    ("net-update-name", "UpdateNetwork", lambda i: N.UpdateNetworkRequest(id=i["net"], name=" "),
     ME, INV, "name"),
    ("net-update-shared", "UpdateNetwork",
     lambda i: N.UpdateNetworkRequest(id=i["shared"], name="x"), ME, PD, ""),
    ("net-delete-shared", "DeleteNetwork", lambda i: N.DeleteNetworkRequest(id=i["shared"]), ME,
     PD, ""),
    ("net-delete-in-use", "DeleteNetwork", lambda i: N.DeleteNetworkRequest(id=i["net"]), ME, FP,
     ""),
    ("net-delete-unknown", "DeleteNetwork", N.DeleteNetworkRequest(id=NOPE), ME, NF, "network"),
    # subnets
    ("sub-network-empty", "CreateSubnet", N.CreateSubnetRequest(cidr="10.0.0.0/24"), ME, INV,
     "network_id"),
    ("sub-network-unknown", "CreateSubnet", N.CreateSubnetRequest(network_id=NOPE,
                                                                  cidr="10.0.0.0/24"), ME, NF,
     "network"),
    ("sub-network-other-project", "CreateSubnet",
     lambda i: N.CreateSubnetRequest(network_id=i["bob_net"], cidr="10.0.0.0/24"), ME, NF,
     "network"),
    ("sub-shared-not-owner", "CreateSubnet",
     lambda i: N.CreateSubnetRequest(network_id=i["shared"], cidr="10.0.0.0/24"), ME, PD, ""),
    ("sub-cidr-empty", "CreateSubnet", sub(), ME, INV, "cidr"),
    ("sub-cidr-bogus", "CreateSubnet", sub(cidr="10.0.0/24x"), ME, INV, "cidr"),
    ("sub-cidr-no-prefix", "CreateSubnet", sub(cidr="10.1.0.0"), ME, INV, "cidr"),
    ("sub-cidr-31", "CreateSubnet", sub(cidr="10.1.0.0/31"), ME, INV, "cidr"),
    ("sub-cidr-v6-128", "CreateSubnet", sub(cidr="fd00::1/128"), ME, INV, "cidr"),
    ("sub-version-bad", "CreateSubnet", sub(cidr="10.1.0.0/24", ip_version=5), ME, INV,
     "ip_version"),
    ("sub-version-mismatch", "CreateSubnet", sub(cidr="10.1.0.0/24", ip_version=6), ME, INV,
     "cidr"),
    ("sub-overlap", "CreateSubnet", sub(cidr="10.99.0.128/25"), ME, INV, "cidr"),
    ("sub-overlap-wider", "CreateSubnet", sub(cidr="10.0.0.0/8"), ME, INV, "cidr"),
    ("sub-gateway-outside", "CreateSubnet", sub(cidr="10.1.0.0/24", gateway_ip="10.2.0.1"), ME,
     INV, "gateway_ip"),
    ("sub-gateway-network", "CreateSubnet", sub(cidr="10.1.0.0/24", gateway_ip="10.1.0.0"), ME,
     INV, "gateway_ip"),
    ("sub-gateway-bogus", "CreateSubnet", sub(cidr="10.1.0.0/24", gateway_ip="gw"), ME, INV,
     "gateway_ip"),
    ("sub-pool-outside", "CreateSubnet", sub(cidr="10.1.0.0/24", allocation_pools=[
        N.AllocationPool(start="10.1.0.10", end="10.1.1.10")]), ME, INV,
     "allocation_pools[0].end"),
    ("sub-pool-reversed", "CreateSubnet", sub(cidr="10.1.0.0/24", allocation_pools=[
        N.AllocationPool(start="10.1.0.20", end="10.1.0.10")]), ME, INV, "allocation_pools[0]"),
    ("sub-pool-gateway", "CreateSubnet", sub(cidr="10.1.0.0/24", allocation_pools=[
        N.AllocationPool(start="10.1.0.1", end="10.1.0.10")]), ME, INV, "allocation_pools[0]"),
    ("sub-pool-overlap", "CreateSubnet", sub(cidr="10.1.0.0/24", allocation_pools=[
        N.AllocationPool(start="10.1.0.10", end="10.1.0.20"),
        N.AllocationPool(start="10.1.0.15", end="10.1.0.30")]), ME, INV, "allocation_pools[1]"),
    ("sub-pool-bogus", "CreateSubnet", sub(cidr="10.1.0.0/24", allocation_pools=[
        N.AllocationPool(start="x", end="10.1.0.30")]), ME, INV, "allocation_pools[0].start"),
    ("sub-dns-bogus", "CreateSubnet", sub(cidr="10.1.0.0/24", dns_nameservers=["dns"]), ME, INV,
     "dns_nameservers[0]"),
    ("sub-dns-many", "CreateSubnet", sub(cidr="10.1.0.0/24", dns_nameservers=[
        f"10.0.0.{i}" for i in range(6)]), ME, INV, "dns_nameservers"),
    ("sub-name-long", "CreateSubnet", sub(cidr="10.1.0.0/24", name="n" * 256), ME, INV, "name"),
    ("sub-get-empty", "GetSubnet", N.GetSubnetRequest(), ME, INV, "id"),
    ("sub-get-unknown", "GetSubnet", N.GetSubnetRequest(id=NOPE), ME, NF, "subnet"),
    ("sub-get-other-project", "GetSubnet", lambda i: N.GetSubnetRequest(id=i["subnet"]), OTHER,
     NF, "subnet"),
    ("sub-list-unknown-net", "ListSubnets", N.ListSubnetsRequest(network_id=NOPE), ME, NF,
     "network"),
    ("sub-delete-allocated", "DeleteSubnet", lambda i: N.DeleteSubnetRequest(id=i["subnet"]), ME,
     FP, ""),
    ("sub-delete-other-project", "DeleteSubnet", lambda i: N.DeleteSubnetRequest(id=i["subnet"]),
     OTHER, NF, "subnet"),
    # ports
    ("port-network-empty", "CreatePort", N.CreatePortRequest(), ME, INV, "network_id"),
    ("port-network-unknown", "CreatePort", N.CreatePortRequest(network_id=NOPE), ME, NF,
     "network"),
    ("port-network-other-project", "CreatePort",
     lambda i: N.CreatePortRequest(network_id=i["bob_net"]), ME, NF, "network"),
    ("port-ip-outside-subnets", "CreatePort", prt(fixed_ips=[fip("10.50.0.5")]), ME, INV,
     "fixed_ips[0].ip_address"),
    ("port-ip-outside-pools", "CreatePort", prt(fixed_ips=[fip("10.99.0.200")]), ME, INV,
     "fixed_ips[0].ip_address"),
    ("port-ip-gateway", "CreatePort", prt(fixed_ips=[fip("10.99.0.1")]), ME, INV,
     "fixed_ips[0].ip_address"),
    ("port-ip-bogus", "CreatePort", prt(fixed_ips=[fip("10.99.0.300")]), ME, INV,
     "fixed_ips[0].ip_address"),
    ("port-ip-taken", "CreatePort", prt(fixed_ips=[fip("10.99.0.50")]), ME, AE, ""),
    ("port-ip-twice", "CreatePort", prt(fixed_ips=[fip("10.99.0.60"), fip("10.99.0.60")]), ME,
     INV, "fixed_ips[1].ip_address"),
    ("port-ip-wrong-subnet", "CreatePort",
     lambda i: N.CreatePortRequest(network_id=i["net"], fixed_ips=[fip("10.99.0.60",
                                                                       i["subnet2"])]),
     ME, INV, "fixed_ips[0].subnet_id"),
    ("port-ip-not-in-its-subnet", "CreatePort",
     lambda i: N.CreatePortRequest(network_id=i["net2"], fixed_ips=[fip("10.99.0.60",
                                                                        i["subnet2"])]),
     ME, INV, "fixed_ips[0].ip_address"),
    ("port-subnet-unknown", "CreatePort", prt(fixed_ips=[fip(subnet_id=NOPE)]), ME, NF, "subnet"),
    ("port-fixed-empty", "CreatePort", prt(fixed_ips=[fip()]), ME, INV, "fixed_ips[0]"),
    ("port-fixed-many", "CreatePort", prt(fixed_ips=[fip(f"10.99.0.{20 + i}") for i in range(6)]),
     ME, INV, "fixed_ips"),
    ("port-mac-bogus", "CreatePort", prt(mac_address="fa:16:3e:zz:00:01"), ME, INV,
     "mac_address"),
    ("port-mac-multicast", "CreatePort", prt(mac_address="01:00:5e:00:00:01"), ME, INV,
     "mac_address"),
    ("port-mac-taken", "CreatePort",
     lambda i: N.CreatePortRequest(network_id=i["net"], mac_address=i["mac"].upper()), ME, AE,
     ""),
    ("port-sg-unknown", "CreatePort", prt(security_groups=["nope"]), ME, NF, "security_group"),
    ("port-name-ctl", "CreatePort", prt(name="a\nb"), ME, INV, "name"),
    ("port-get-empty", "GetPort", N.GetPortRequest(), ME, INV, "id"),
    ("port-get-unknown", "GetPort", N.GetPortRequest(id=NOPE), ME, NF, "port"),
    ("port-get-other-project", "GetPort", lambda i: N.GetPortRequest(id=i["port"]), OTHER, NF,
     "port"),
    ("port-update-name", "UpdatePort", lambda i: N.UpdatePortRequest(id=i["port"], name="x" * 256),
     ME, INV, "name"),
    ("port-delete-other-project", "DeletePort", lambda i: N.DeletePortRequest(id=i["port"]),
     OTHER, NF, "port"),
    ("port-delete-malformed", "DeletePort", N.DeletePortRequest(id="nope"), ME, NF, "port"),
]


@pytest.mark.parametrize("method, request_, metadata, code, field",
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
async def test_bad_requests(stack, ids, method, request_, metadata, code, field):
    if callable(request_):
        request_ = request_(ids)
    before = await counts(stack.store)
    await expect(getattr(stack.net, method)(request_, metadata=metadata), code, field)
    assert await counts(stack.store) == before     # nothing left behind
