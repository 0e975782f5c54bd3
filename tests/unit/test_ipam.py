"""IPAM (nimbus.ipam): the pure rules table-driven (CIDRs, gateways, pools,
overlaps, MACs, network_data.json), and allocation against the session's
real etcd, each test under its own key prefix: exhaustion of a small subnet
under concurrency, idempotency, all-or-nothing, ports, release."""

import asyncio
import ipaddress
import uuid

import grpc
import pytest
from google.protobuf import wrappers_pb2

from nimbus import errors, ipam
from nimbus.compute.v1 import compute_pb2
from nimbus.compute.v1 import networks_pb2 as N
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store

IP = ipaddress.ip_address
NET = ipaddress.ip_network
CODE = grpc.StatusCode


def field_of(exc: errors.NimbusError) -> str:
    return getattr(exc, "field", "")


# ---- pure rules ----------------------------------------------------------------------

@pytest.mark.parametrize("cidr, version, normalized, field", [
    ("10.0.0.0/24", 0, "10.0.0.0/24", ""),
    ("10.0.0.5/24", 4, "10.0.0.0/24", ""),            # host bits cleared
    (" 192.168.1.0/29 ", 0, "192.168.1.0/29", ""),
    ("fd00:1::7/64", 6, "fd00:1::/64", ""),
    ("10.0.0.0/30", 0, "10.0.0.0/30", ""),
    ("10.0.0.0/31", 0, None, "cidr"),                 # no room for a gateway and a host
    ("fd00::/127", 0, None, "cidr"),
    ("10.0.0.0", 0, None, "cidr"),                    # no prefix length
    ("10.0.0.0/33", 0, None, "cidr"),
    ("bogus/24", 0, None, "cidr"),
    ("", 0, None, "cidr"),
    ("10.0.0.0/24", 6, None, "cidr"),                 # version mismatch
    ("fd00::/64", 4, None, "cidr"),
    ("10.0.0.0/24", 5, None, "ip_version"),
])
def test_parse_cidr(cidr, version, normalized, field):
    if normalized is None:
        with pytest.raises(errors.InvalidArgument) as err:
            ipam.parse_cidr(cidr, version)
        assert err.value.field == field
    else:
        assert str(ipam.parse_cidr(cidr, version)) == normalized


@pytest.mark.parametrize("cidr, gateway, expected, field", [
    ("10.0.0.0/24", None, "10.0.0.1", ""),            # default: first host
    ("fd00::/64", None, "fd00::1", ""),
    ("10.0.0.0/24", "", None, ""),                    # no gateway
    ("10.0.0.0/24", "10.0.0.254", "10.0.0.254", ""),
    ("10.0.0.0/24", "10.0.0.0", None, "gateway_ip"),  # network address
    ("10.0.0.0/24", "10.0.0.255", None, "gateway_ip"),  # broadcast
    ("10.0.0.0/24", "10.0.1.1", None, "gateway_ip"),  # outside
    ("10.0.0.0/24", "fd00::1", None, "gateway_ip"),   # other version
    ("10.0.0.0/24", "nope", None, "gateway_ip"),
])
def test_check_gateway(cidr, gateway, expected, field):
    net = NET(cidr)
    if field:
        with pytest.raises(errors.InvalidArgument) as err:
            ipam.check_gateway(net, gateway)
        assert err.value.field == field
    else:
        got = ipam.check_gateway(net, gateway)
        assert (str(got) if got is not None else None) == expected


@pytest.mark.parametrize("cidr, gateway, pools", [
    ("10.0.0.0/29", "10.0.0.1", [("10.0.0.2", "10.0.0.6")]),     # 5 usable
    ("10.0.0.0/29", "10.0.0.4", [("10.0.0.1", "10.0.0.3"), ("10.0.0.5", "10.0.0.6")]),
    ("10.0.0.0/29", "10.0.0.6", [("10.0.0.1", "10.0.0.5")]),
    ("10.0.0.0/29", None, [("10.0.0.1", "10.0.0.6")]),
    ("10.0.0.0/30", "10.0.0.1", [("10.0.0.2", "10.0.0.2")]),
    ("fd00::/126", "fd00::1", [("fd00::2", "fd00::3")]),          # no broadcast in IPv6
])
def test_default_pools(cidr, gateway, pools):
    got = ipam.default_pools(NET(cidr), IP(gateway) if gateway else None)
    assert [(str(a), str(b)) for a, b in got] == pools


POOL_CASES = [
    ([("10.0.0.10", "10.0.0.20")], [("10.0.0.10", "10.0.0.20")], ""),
    ([("10.0.0.50", "10.0.0.60"), ("10.0.0.10", "10.0.0.20")],      # sorted
     [("10.0.0.10", "10.0.0.20"), ("10.0.0.50", "10.0.0.60")], ""),
    ([("10.0.0.10", "10.0.0.10")], [("10.0.0.10", "10.0.0.10")], ""),
    ([("10.0.0.20", "10.0.0.10")], None, "allocation_pools[0]"),   # start after end
    ([("10.0.0.10", "10.0.0.20"), ("10.0.0.15", "10.0.0.30")], None, "allocation_pools[1]"),
    ([("10.0.0.10", "10.0.0.20"), ("10.0.0.20", "10.0.0.30")], None, "allocation_pools[1]"),
    ([("10.0.0.1", "10.0.0.20")], None, "allocation_pools[0]"),    # holds the gateway
    ([("10.0.0.0", "10.0.0.20")], None, "allocation_pools[0].start"),  # network address
    ([("10.0.0.200", "10.0.0.255")], None, "allocation_pools[0].end"),  # broadcast
    ([("10.0.0.10", "10.0.1.20")], None, "allocation_pools[0].end"),   # outside the cidr
    ([("x", "10.0.0.20")], None, "allocation_pools[0].start"),
    ([("10.0.0.10", "fd00::1")], None, "allocation_pools[0].end"),
]


@pytest.mark.parametrize("pools, expected, field", POOL_CASES)
def test_check_pools(pools, expected, field):
    net, gateway = NET("10.0.0.0/24"), IP("10.0.0.1")
    if field:
        with pytest.raises(errors.InvalidArgument) as err:
            ipam.check_pools(net, gateway, pools)
        assert err.value.field == field
    else:
        got = ipam.check_pools(net, gateway, pools)
        assert [(str(a), str(b)) for a, b in got] == expected


def _subnet(cidr: str, sid: str = "", **kw) -> N.Subnet:
    network = N.Network(id=str(uuid.uuid4()), project_id="p")
    s = ipam.build_subnet(network, [], cidr=cidr, **kw)
    s.id = sid or str(uuid.uuid4())
    return s


@pytest.mark.parametrize("existing, kw, field", [
    (["10.0.0.0/24"], {"cidr": "10.0.0.128/25"}, "cidr"),            # inside an existing one
    (["10.0.0.0/25"], {"cidr": "10.0.0.0/16"}, "cidr"),              # around one
    (["10.0.0.0/24"], {"cidr": "10.0.1.0/24"}, ""),
    (["10.0.0.0/24"], {"cidr": "fd00::/64"}, ""),                    # other version
    ([], {"cidr": "10.0.0.0/24", "dns_nameservers": ["8.8.8.8", "8.8.8.8"]},
     "dns_nameservers[1]"),
    ([], {"cidr": "10.0.0.0/24", "dns_nameservers": ["1.1.1.1"] * 6}, "dns_nameservers"),
    ([], {"cidr": "10.0.0.0/24", "dns_nameservers": ["dns.example"]}, "dns_nameservers[0]"),
    ([], {"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.9",
          "allocation_pools": [("10.0.0.2", "10.0.0.20")]}, "allocation_pools[0]"),
])
def test_build_subnet_rules(existing, kw, field):
    network = N.Network(id=str(uuid.uuid4()), project_id="p")
    others = [_subnet(c) for c in existing]
    if field:
        with pytest.raises(errors.InvalidArgument) as err:
            ipam.build_subnet(network, others, **kw)
        assert err.value.field == field
    else:
        subnet = ipam.build_subnet(network, others, **kw)
        assert subnet.network_id == network.id and subnet.project_id == "p"


def test_build_subnet_defaults_and_normalization():
    network = N.Network(id=str(uuid.uuid4()), project_id="p")
    s = ipam.build_subnet(network, [], cidr="192.168.7.9/29", dns_nameservers=[" 8.8.4.4"])
    assert (s.cidr, s.ip_version, s.gateway_ip) == ("192.168.7.8/29", 4, "192.168.7.9")
    assert [(p.start, p.end) for p in s.allocation_pools] == [("192.168.7.10", "192.168.7.14")]
    assert list(s.dns_nameservers) == ["8.8.4.4"]
    assert ipam.pool_size(s) == 5
    v6 = ipam.build_subnet(network, [s], cidr="FD00:0:0:1::/64", gateway_ip="")
    assert (v6.cidr, v6.ip_version, v6.gateway_ip) == ("fd00:0:0:1::/64", 6, "")


@pytest.mark.parametrize("taken, spread, expected", [
    (set(), 0, {"10.0.0.2"}),
    ({"10.0.0.2", "10.0.0.3"}, 0, {"10.0.0.4"}),
    ({"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, 0, {None}),
    ({"10.0.0.2"}, 8, {"10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}),
    ({"10.0.0.2"}, 2, {"10.0.0.3", "10.0.0.4"}),
    ({"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, 8, {None}),
])
def test_pick(taken, spread, expected):
    subnet = _subnet("10.0.0.0/29")
    for _ in range(20):
        assert ipam.pick(subnet, taken, spread) in expected


def test_pick_spread_stays_within_the_first_free_addresses():
    subnet = _subnet("10.0.0.0/24")
    seen = {ipam.pick(subnet, {"10.0.0.2"}, spread=ipam.SPREAD) for _ in range(300)}
    assert seen == {f"10.0.0.{i}" for i in range(3, 3 + ipam.SPREAD)}


@pytest.mark.parametrize("losses, window", [(0, 0), (1, 8), (2, 16), (3, 32), (4, 64), (9, 64)])
def test_spread_doubles_with_each_lost_race(losses, window):
    assert ipam.spread_after(losses) == window


def test_pick_skips_pool_gaps_and_large_ipv6_pools():
    s = _subnet("10.0.0.0/24", allocation_pools=[("10.0.0.10", "10.0.0.11"),
                                                 ("10.0.0.50", "10.0.0.51")])
    assert ipam.pick(s, {"10.0.0.10", "10.0.0.11"}) == "10.0.0.50"
    v6 = _subnet("fd00::/64")
    assert ipam.pick(v6, {"fd00::2", "fd00::3"}) == "fd00::4"


@pytest.mark.parametrize("value, expected", [
    ("fa:16:3e:00:11:22", "fa:16:3e:00:11:22"),
    ("FA-16-3E-AA-BB-CC", "fa:16:3e:aa:bb:cc"),
    ("01:00:5e:00:00:01", None),      # multicast
    ("00:00:00:00:00:00", None),
    ("fa:16:3e:00:11", None),
    ("zz:16:3e:00:11:22", None),
    ("fa163e001122", None),
])
def test_check_mac(value, expected):
    if expected is None:
        with pytest.raises(errors.InvalidArgument) as err:
            ipam.check_mac(value)
        assert err.value.field == "mac_address"
    else:
        assert ipam.check_mac(value) == expected


def test_generated_macs_are_neutron_style_and_valid():
    macs = {ipam.generate_mac() for _ in range(200)}
    assert len(macs) > 190
    for mac in macs:
        assert mac.startswith("fa:16:3e:") and ipam.check_mac(mac) == mac


@pytest.mark.parametrize("mtu, expected", [(0, 1500), (68, 68), (9000, 9000), (1450, 1450),
                                           (67, None), (9001, None), (-1, None)])
def test_check_mtu(mtu, expected):
    if expected is None:
        with pytest.raises(errors.InvalidArgument) as err:
            ipam.check_mtu(mtu)
        assert err.value.field == "mtu"
    else:
        assert ipam.check_mtu(mtu) == expected


def test_bridge_name_fits_a_linux_interface_name():
    nid = str(uuid.uuid4())
    assert ipam.bridge_name(nid) == "br-" + nid[:11]
    assert len(ipam.bridge_name(nid)) <= 15


def test_network_data_shape():
    net = N.Network(id="11111111-2222-4333-8444-555555555555", mtu=1450)
    v4 = N.Subnet(id="s4", network_id=net.id, ip_version=4, cidr="10.0.0.0/24",
                  gateway_ip="10.0.0.1", dns_nameservers=["8.8.8.8", "1.1.1.1"])
    v6 = N.Subnet(id="s6", network_id=net.id, ip_version=6, cidr="fd00::/64",
                  gateway_ip="fd00::1", dns_nameservers=["8.8.8.8"])
    bare = N.Network(id="99999999-2222-4333-8444-555555555555")
    nogw = N.Subnet(id="s9", network_id=bare.id, ip_version=4, cidr="192.168.0.0/16")
    p1 = N.Port(id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", network_id=net.id,
                mac_address="fa:16:3e:00:00:01",
                fixed_ips=[N.FixedIp(subnet_id="s4", ip_address="10.0.0.5"),
                           N.FixedIp(subnet_id="s6", ip_address="fd00::5")])
    p2 = N.Port(id="ffffffff-bbbb-4ccc-8ddd-eeeeeeeeeeee", network_id=bare.id,
                mac_address="fa:16:3e:00:00:02",
                fixed_ips=[N.FixedIp(subnet_id="s9", ip_address="192.168.3.4")])
    data = ipam.network_data([p1, p2], [v4, v6, nogw], [net, bare])
    assert data == {
        "links": [
            {"id": "tapaaaaaaaa-bb", "vif_id": p1.id, "type": "bridge", "mtu": 1450,
             "ethernet_mac_address": "fa:16:3e:00:00:01"},
            {"id": "tapffffffff-bb", "vif_id": p2.id, "type": "bridge", "mtu": 1500,
             "ethernet_mac_address": "fa:16:3e:00:00:02"},
        ],
        "networks": [
            {"id": "network0", "type": "ipv4", "link": "tapaaaaaaaa-bb", "ip_address": "10.0.0.5",
             "netmask": "255.255.255.0", "network_id": net.id,
             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}],
             "services": [{"type": "dns", "address": "8.8.8.8"},
                          {"type": "dns", "address": "1.1.1.1"}]},
            {"id": "network1", "type": "ipv6", "link": "tapaaaaaaaa-bb", "ip_address": "fd00::5",
             "netmask": "ffff:ffff:ffff:ffff::", "network_id": net.id,
             "routes": [{"network": "::", "netmask": "::", "gateway": "fd00::1"}],
             "services": [{"type": "dns", "address": "8.8.8.8"}]},
            {"id": "network2", "type": "ipv4", "link": "tapffffffff-bb",
             "ip_address": "192.168.3.4", "netmask": "255.255.0.0", "network_id": bare.id,
             "routes": [], "services": []},
        ],
        "services": [{"type": "dns", "address": "8.8.8.8"}, {"type": "dns", "address": "1.1.1.1"}],
    }
    vifs = [ipam.vif_for_port(p1, net, {"s4": v4, "s6": v6})]
    assert vifs[0].bridge == "br-11111111-22" and vifs[0].mtu == 1450
    assert ipam.network_data_for_vifs(vifs)["networks"] == data["networks"][:2]
    assert ipam.network_data([], [], []) == {"links": [], "networks": [], "services": []}


# ---- against etcd ------------------------------------------------------------------------

def project() -> str:
    return f"p-{uuid.uuid4().hex[:6]}"


async def make_network(store: Store, project_id: str, *cidrs: str, shared: bool = False,
                       **subnet_kw) -> tuple[N.Network, list[N.Subnet]]:
    network = N.Network(id=str(uuid.uuid4()), project_id=project_id, shared=shared, mtu=1500)
    subnets = []
    for cidr in cidrs:
        s = ipam.build_subnet(network, subnets, cidr=cidr, **subnet_kw)
        s.id = str(uuid.uuid4())
        subnets.append(s)
        network.subnets.append(s.id)
        await store.create(keys.subnet(s.id), s)
    await store.create(keys.network(network.id), network)
    return network, subnets


async def make_servers(store: Store, project_id: str, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for sid in ids:
        await store.create(keys.instance(sid), records_pb2.InstanceRecord(
            server=compute_pb2.Server(id=sid, project_id=project_id)))
    return ids


def req(uuid="", port="", fixed_ip=""):
    return compute_pb2.NetworkRequest(uuid=uuid, port=port, fixed_ip=fixed_ip)


async def counts(store: Store) -> dict:
    return {name: await store.count(prefix) for name, prefix in (
        ("ports", keys.PORTS), ("ips", keys.IPS), ("macs", keys.MACS),
        ("network-ports", keys.NETWORK_PORTS), ("server-ports", keys.SERVER_PORTS))}


def nothing(store_counts: dict) -> bool:
    return not any(store_counts.values())


@pytest.mark.parametrize("shared_store", [False, True], ids=["racing-stores", "one-store"])
async def test_twelve_servers_race_for_five_addresses(etcd, store, shared_store):
    """A /29 (5 usable addresses), 12 concurrent builds: exactly 5 get an
    address, 7 are RESOURCE_EXHAUSTED, no address or MAC twice, nothing
    leaked; release frees everything. Separate stores race in etcd (no
    in-process lock between them); one store queues on its network lock."""
    p = project()
    network, (subnet,) = await make_network(store, p, "10.9.0.0/29")
    servers = await make_servers(store, p, 12)
    stores = [store] * 12 if shared_store else [
        await Store.connect(etcd.endpoint, prefix=store.prefix) for _ in range(12)]
    try:
        results = await asyncio.gather(*(
            ipam.allocate_for_server(s, sid, p, [req(uuid=network.id)])
            for s, sid in zip(stores, servers)), return_exceptions=True)
    finally:
        if not shared_store:
            for s in stores:
                await s.close()
    won = {sid: r for sid, r in zip(servers, results) if not isinstance(r, BaseException)}
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 5 and len(lost) == 7, results
    for exc in lost:
        assert isinstance(exc, errors.ResourceExhausted), exc
        assert exc.code == CODE.RESOURCE_EXHAUSTED
        assert exc.message == f"No more IP addresses available on subnet {subnet.id}."
    addresses = [vif.ips[0].ip_address for vifs in won.values() for vif in vifs]
    macs = [vif.mac_address for vifs in won.values() for vif in vifs]
    assert sorted(addresses, key=IP) == [f"10.9.0.{i}" for i in range(2, 7)]
    assert len(set(macs)) == 5
    assert await counts(store) == {"ports": 5, "ips": 5, "macs": 5, "network-ports": 5,
                                   "server-ports": 5}
    for sid, vifs in won.items():
        (vif,) = vifs
        assert vif.bridge == ipam.bridge_name(network.id) and vif.mtu == 1500
        assert (vif.ips[0].cidr, vif.ips[0].gateway_ip) == ("10.9.0.0/29", "10.9.0.1")
        port = (await store.get(keys.port(vif.port_id), N.Port)).msg
        assert (port.device_id, port.status, port.project_id) == (sid, N.Port.STATUS_ACTIVE, p)
        value = await store.get(keys.ip(subnet.id, vif.ips[0].ip_address), wrappers_pb2.StringValue)
        assert value.msg.value == vif.port_id
    for sid in servers:            # the losers have nothing to release: a no-op
        await ipam.release_for_server(store, sid)
    assert nothing(await counts(store))
    # Everything freed: a new server gets the first address again.
    (again,) = await make_servers(store, p, 1)
    (vif,) = await ipam.allocate_for_server(store, again, p, [req(uuid=network.id)])
    assert vif.ips[0].ip_address == "10.9.0.2"


async def test_allocate_is_idempotent_per_server(etcd, store):
    p = project()
    network, _ = await make_network(store, p, "10.1.0.0/24")
    (sid,) = await make_servers(store, p, 1)
    first = await ipam.allocate_for_server(store, sid, p, [req(uuid=network.id)])
    again = await ipam.allocate_for_server(store, sid, p, [req(uuid=network.id)])
    assert first == again and len(first) == 1
    # Two concurrent retries of one build (separate stores, no shared lock): one set of ports.
    (other,) = await make_servers(store, p, 1)
    stores = [await Store.connect(etcd.endpoint, prefix=store.prefix) for _ in range(4)]
    try:
        results = await asyncio.gather(*(
            ipam.allocate_for_server(s, other, p, [req(uuid=network.id), req(uuid=network.id)])
            for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert all(r == results[0] for r in results) and len(results[0]) == 2
    assert (await counts(store))["ports"] == 3
    assert await ipam.server_vifs(store, other) == results[0]
    assert await ipam.release_for_server(store, other) == [v.port_id for v in results[0]]
    assert await ipam.release_for_server(store, other) == []
    assert (await counts(store))["ports"] == 1


async def test_all_or_nothing_across_networks(store):
    """The second network is full: the first one's port is not written either."""
    p = project()
    roomy, _ = await make_network(store, p, "10.2.0.0/24")
    tiny, (tiny_subnet,) = await make_network(store, p, "10.3.0.0/30")    # one address
    a, b = await make_servers(store, p, 2)
    await ipam.allocate_for_server(store, a, p, [req(uuid=tiny.id)])
    before = await counts(store)
    with pytest.raises(errors.ResourceExhausted) as err:
        await ipam.allocate_for_server(store, b, p, [req(uuid=roomy.id), req(uuid=tiny.id)])
    assert tiny_subnet.id in err.value.message
    assert await counts(store) == before


async def test_dual_stack_ports_and_ordering(store):
    p = project()
    net, (v4, v6) = await make_network(store, p, "10.4.0.0/24", "fd00:4::/64")
    other, _ = await make_network(store, p, "10.5.0.0/24")
    (sid,) = await make_servers(store, p, 1)
    vifs = await ipam.allocate_for_server(store, sid, p, [req(uuid=other.id), req(uuid=net.id)],
                                          security_groups=["default", "web"])
    assert [v.network_id for v in vifs] == [other.id, net.id]      # NIC order kept
    assert [(i.ip_version, i.ip_address) for i in vifs[1].ips] == [(4, "10.4.0.2"),
                                                                   (6, "fd00:4::2")]
    port = (await store.get(keys.port(vifs[1].port_id), N.Port)).msg
    assert list(port.security_groups) == ["default", "web"]
    assert not port.preserve_on_delete and port.device_owner == ipam.DEVICE_OWNER
    data = ipam.network_data_for_vifs(vifs)
    assert [n["type"] for n in data["networks"]] == ["ipv4", "ipv4", "ipv6"]
    assert await ipam.server_vifs(store, sid) == vifs


async def test_fixed_ips(store):
    p = project()
    net, (subnet,) = await make_network(store, p, "10.6.0.0/24",
                                        allocation_pools=[("10.6.0.10", "10.6.0.20")])
    a, b, c = await make_servers(store, p, 3)
    (vif,) = await ipam.allocate_for_server(store, a, p, [req(uuid=net.id, fixed_ip="10.6.0.15")])
    assert vif.ips[0].ip_address == "10.6.0.15"
    before = await counts(store)
    cases = [
        ("10.6.0.15", errors.AlreadyExists, ""),                       # taken
        ("10.6.0.30", errors.InvalidArgument, "networks[0].fixed_ip"),  # outside the pools
        ("10.6.0.1", errors.InvalidArgument, "networks[0].fixed_ip"),   # the gateway
        ("10.7.0.5", errors.InvalidArgument, "networks[0].fixed_ip"),   # outside every subnet
        ("fd00::5", errors.InvalidArgument, "networks[0].fixed_ip"),
    ]
    for fixed, exc_type, field in cases:
        with pytest.raises(exc_type) as err:
            await ipam.allocate_for_server(store, b, p, [req(uuid=net.id, fixed_ip=fixed)])
        assert field_of(err.value) == field, fixed
        with pytest.raises(exc_type):
            await ipam.validate_requests(store, p, [req(uuid=net.id, fixed_ip=fixed)])
    assert await counts(store) == before
    # Automatic addresses skip the taken fixed one.
    await ipam.allocate_for_server(store, c, p, [req(uuid=net.id)] * 6)
    got = [f.ip_address for port in await ipam.server_ports(store, c) for f in port.fixed_ips]
    assert got == ["10.6.0.10", "10.6.0.11", "10.6.0.12", "10.6.0.13", "10.6.0.14", "10.6.0.16"]


async def test_existing_port_is_bound_then_unbound(store):
    p = project()
    net, (subnet,) = await make_network(store, p, "10.8.0.0/24")
    port = await ipam.create_port(store, p, net, name="mine", fixed_ips=[("", "10.8.0.77")],
                                  mac_address="FA:16:3E:12:34:56", security_groups=["default"])
    assert (port.mac_address, port.status, port.preserve_on_delete) == (
        "fa:16:3e:12:34:56", N.Port.STATUS_DOWN, True)
    a, b = await make_servers(store, p, 2)
    await ipam.validate_requests(store, p, [req(port=port.id)])
    (vif,) = await ipam.allocate_for_server(store, a, p, [req(port=port.id)])
    assert (vif.port_id, vif.mac_address, vif.ips[0].ip_address) == (
        port.id, "fa:16:3e:12:34:56", "10.8.0.77")
    bound = (await store.get(keys.port(port.id), N.Port)).msg
    assert (bound.device_id, bound.status) == (a, N.Port.STATUS_ACTIVE)
    for call in (ipam.validate_requests(store, p, [req(port=port.id)]),
                 ipam.allocate_for_server(store, b, p, [req(port=port.id)])):
        with pytest.raises(errors.FailedPrecondition, match="still in use"):
            await call
    with pytest.raises(errors.FailedPrecondition):
        await ipam.delete_port(store, await store.get(keys.port(port.id), N.Port))
    # Another project cannot see the port.
    with pytest.raises(errors.NotFound) as err:
        await ipam.validate_requests(store, project(), [req(port=port.id)])
    assert err.value.kind == "port"
    assert await ipam.release_for_server(store, a) == [port.id]
    kept = (await store.get(keys.port(port.id), N.Port)).msg
    assert (kept.device_id, kept.status, [f.ip_address for f in kept.fixed_ips]) == (
        "", N.Port.STATUS_DOWN, ["10.8.0.77"])
    assert await counts(store) == {"ports": 1, "ips": 1, "macs": 1, "network-ports": 1,
                                   "server-ports": 0}
    # Free again: the other server takes it.
    (vif,) = await ipam.allocate_for_server(store, b, p, [req(port=port.id)])
    assert vif.port_id == port.id
    await ipam.release_for_server(store, b)
    await ipam.delete_port(store, await store.get(keys.port(port.id), N.Port))
    assert nothing(await counts(store))


async def test_create_port_conflicts(store):
    p = project()
    net, (subnet,) = await make_network(store, p, "10.10.0.0/29")
    first = await ipam.create_port(store, p, net, fixed_ips=[(subnet.id, "")])
    assert [f.ip_address for f in first.fixed_ips] == ["10.10.0.2"]
    before = await counts(store)
    with pytest.raises(errors.AlreadyExists):
        await ipam.create_port(store, p, net, mac_address=first.mac_address)
    with pytest.raises(errors.AlreadyExists):
        await ipam.create_port(store, p, net, fixed_ips=[("", "10.10.0.2")])
    other, _ = await make_network(store, p, "10.11.0.0/24")
    with pytest.raises(errors.InvalidArgument) as err:
        await ipam.create_port(store, p, other, fixed_ips=[(subnet.id, "")])
    assert err.value.field == "fixed_ips[0].subnet_id"
    with pytest.raises(errors.NotFound):
        await ipam.create_port(store, p, net, fixed_ips=[(str(uuid.uuid4()), "")])
    with pytest.raises(errors.InvalidArgument) as err:
        await ipam.create_port(store, p, net, fixed_ips=[("", "10.10.0.3"), ("", "10.10.0.3")])
    assert err.value.field == "fixed_ips[1].ip_address"
    assert await counts(store) == before


async def test_networks_mode_and_auto(store):
    p = project()
    (sid,) = await make_servers(store, p, 1)
    assert await ipam.allocate_for_server(store, sid, p, [], "auto") == []    # nothing exists
    shared, _ = await make_network(store, "admin", "10.20.0.0/24", shared=True)
    assert await ipam.allocate_for_server(store, sid, p, [], "none") == []
    (vif,) = await ipam.allocate_for_server(store, sid, p, [], "auto")       # the shared one
    assert vif.network_id == shared.id
    await ipam.release_for_server(store, sid)
    own, _ = await make_network(store, p, "10.21.0.0/24")
    (vif,) = await ipam.allocate_for_server(store, sid, p, [], "")            # own first
    assert vif.network_id == own.id
    await ipam.release_for_server(store, sid)
    await make_network(store, p, "10.22.0.0/24")
    with pytest.raises(errors.FailedPrecondition, match="Multiple possible networks"):
        await ipam.allocate_for_server(store, sid, p, [], "auto")
    with pytest.raises(errors.FailedPrecondition):
        await ipam.validate_requests(store, p, [], networks_mode="auto")
    await ipam.validate_requests(store, p, [], networks_mode="none")
    # A network of another project is not visible; a shared one is.
    with pytest.raises(errors.NotFound) as err:
        await ipam.validate_requests(store, project(), [req(uuid=own.id)])
    assert err.value.kind == "network"
    await ipam.validate_requests(store, project(), [req(uuid=shared.id)])


async def test_validate_requests_rules(store):
    p = project()
    net, _ = await make_network(store, p, "10.30.0.0/24")
    port = await ipam.create_port(store, p, net)
    cases = [
        ([req(uuid=str(uuid.uuid4()))], {}, errors.NotFound, ""),
        ([req(port=str(uuid.uuid4()))], {}, errors.NotFound, ""),
        ([req(uuid="not-a-uuid")], {}, errors.NotFound, ""),
        ([req(port=port.id)], {"max_count": 2}, errors.InvalidArgument, "networks[0].port"),
        ([req(uuid=net.id, fixed_ip="10.30.0.9")], {"max_count": 2}, errors.InvalidArgument,
         "networks[0].fixed_ip"),
        ([req(uuid=net.id, fixed_ip="10.30.0.9"), req(uuid=net.id, fixed_ip="10.30.0.9")], {},
         errors.InvalidArgument, "networks[1].fixed_ip"),
        ([req(uuid=net.id)] * (ipam.MAX_PORTS_PER_SERVER + 1), {}, errors.InvalidArgument,
         "networks"),
        ([req(uuid=str(uuid.uuid4()), port=port.id)], {}, errors.InvalidArgument,
         "networks[0].port"),
    ]
    for requests, kw, exc_type, field in cases:
        with pytest.raises(exc_type) as err:
            await ipam.validate_requests(store, p, requests, **kw)
        assert field_of(err.value) == field, requests
    await ipam.validate_requests(store, p, [req(uuid=net.id)] * ipam.MAX_PORTS_PER_SERVER)


async def test_sixteen_ports_fit_one_transaction(store):
    p = project()
    net, _ = await make_network(store, p, "10.31.0.0/24", "fd00:31::/64")
    (sid,) = await make_servers(store, p, 1)
    vifs = await ipam.allocate_for_server(store, sid, p,
                                          [req(uuid=net.id)] * ipam.MAX_PORTS_PER_SERVER)
    assert len(vifs) == 16 and all(len(v.ips) == 2 for v in vifs)
    assert len(await ipam.release_for_server(store, sid)) == 16
    assert nothing(await counts(store))


async def test_instance_must_exist(store):
    p = project()
    net, _ = await make_network(store, p, "10.40.0.0/24")
    with pytest.raises(errors.NotFound) as err:
        await ipam.allocate_for_server(store, str(uuid.uuid4()), p, [req(uuid=net.id)])
    assert err.value.kind == "server"
    assert nothing(await counts(store))
    vifs = await ipam.allocate_for_server(store, str(uuid.uuid4()), p, [req(uuid=net.id)],
                                          require_instance=False)
    assert len(vifs) == 1


async def test_a_lost_race_lists_the_subnet_again(store):
    """What a lost race taught us is replaced by a fresh list: an address
    freed meanwhile is found again instead of answering exhausted."""
    p = project()
    net, (subnet,) = await make_network(store, p, "10.50.0.0/30")   # one address: .2
    taken = ipam._Taken(store)
    await taken.load([subnet.id])
    taken.learn(subnet.id, "10.50.0.2")                  # as a lost race would
    target = ipam._Target(net, [subnet])
    with pytest.raises(ipam._Exhausted):
        ipam._plan(store, [target], taken, p, "", 0, False)
    assert taken.raced == {subnet.id}
    await taken.load(list(taken.raced), fresh=True)
    assert taken.raced == set()
    plan = ipam._plan(store, [target], taken, p, "", 0, False)
    assert [f.ip_address for f in plan.ports[0].fixed_ips] == ["10.50.0.2"]


async def test_two_servers_race_for_one_port(etcd, store):
    """Both builds passed the API's check; at NETWORKING exactly one binds
    the port, the other fails with FAILED_PRECONDITION and writes nothing."""
    p = project()
    net, _ = await make_network(store, p, "10.60.0.0/24")
    port = await ipam.create_port(store, p, net)
    servers = await make_servers(store, p, 6)
    for sid in servers:
        await ipam.validate_requests(store, p, [req(port=port.id)])
    stores = [await Store.connect(etcd.endpoint, prefix=store.prefix) for _ in servers]
    try:
        results = await asyncio.gather(*(
            ipam.allocate_for_server(s, sid, p, [req(port=port.id), req(uuid=net.id)])
            for s, sid in zip(stores, servers)), return_exceptions=True)
    finally:
        for s in stores:
            await s.close()
    won = [sid for sid, r in zip(servers, results) if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, errors.FailedPrecondition) for e in lost), results
    assert (await store.get(keys.port(port.id), N.Port)).msg.device_id == won[0]
    assert await counts(store) == {"ports": 2, "ips": 2, "macs": 2, "network-ports": 2,
                                   "server-ports": 2}
