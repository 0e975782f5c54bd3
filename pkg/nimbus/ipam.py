"""Networks, subnets and ports as the build path uses them, and IPAM: the
addresses and MACs ports hold.

Keys (store/keys.py): networks/<id>, subnets/<id>, ports/<id>;
ips/<subnet>/<address> and macs/<mac> (value: the port id) make an address
or a MAC unique by construction: a port is written in one transaction with
a create-if-absent compare on each of them, so two ports can never hold the
same address even when many processes allocate at once. The indexes
network-ports/<network>/<port> and server-ports/<server>/<nn> (NIC order)
join the same transaction.

Allocation picks the first free address of the subnet's pools (the
allocated keys are listed once, then candidates are tried). A lost race
(the transaction's failure branch says which of our addresses went) lists
that subnet again and the next attempt picks at random among the first
few free addresses, a window that doubles with each loss (8 to 64), so
allocators racing from several processes spread out instead of colliding
again. Within one process, allocations on a network also take a
per-network lock (no retry storm; correctness is the compares'). When no
candidate is left the subnet is exhausted: RESOURCE_EXHAUSTED, nothing
written.

Which addresses a port gets: the requested fixed IPs, else one address from
each IP version the network has subnets of (the first subnet of that
version, in the network's order, with a free address). A requested address
must lie inside one of the subnet's allocation pools.

The build path (the conductor, on the agent's behalf; agents never touch
etcd):

- `validate_requests` at CreateServer: references exist and fit.
- `allocate_for_server` at NETWORKING: every port of the server in one
  transaction (all or nothing), idempotent per server.
- `release_for_server` on delete and when a build has finally failed.
- `network_data` / `network_data_for_vifs`: network_data.json.

Errors: an unknown (or other project's) network or port is NOT_FOUND
(ResourceInfo network/port); a port bound to another server is
FAILED_PRECONDITION ("Port X is still in use."); a requested fixed IP that
is already allocated is ALREADY_EXISTS; a fixed IP outside every subnet of
the network, or outside the pools, is INVALID_ARGUMENT networks[i].fixed_ip;
an exhausted subnet is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import random
import re
import secrets
import uuid
import weakref
from typing import Any, Iterable, Iterator, Sequence

from aetcd import rpc
from google.protobuf import wrappers_pb2

from nimbus.ids import is_uuid
from nimbus import errors, log
from nimbus.compute.v1 import networks_pb2 as N
from nimbus.store import keys
from nimbus.store.store import Store, Versioned, now, prefix_end
from nimbus.virt.network_data import DEFAULT_MTU, network_data_for_vifs  # noqa: F401 (re-exported)

_log = log.get("nimbus.ipam")

MIN_MTU, MAX_MTU = 68, 9000
MAX_PORTS_PER_SERVER = 16   # keeps a server's ports inside one etcd transaction (128 ops)
MAX_FIXED_IPS = 5           # per port (Neutron's max_fixed_ips_per_port)
MAX_DNS_NAMESERVERS = 5     # per subnet (Neutron's max_dns_nameservers)
MAX_SUBNETS = 16            # per network (a network delete removes them in one transaction)
MAC_PREFIX = "fa:16:3e"     # Neutron's base_mac
DEVICE_OWNER = "compute:nova"
ATTEMPTS = 50               # lost races before answering UNAVAILABLE
SPREAD = 8                  # after a lost race, pick among this many free addresses
MAX_SPREAD = 64             # ... doubling with each further loss, up to this many

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Cidr = ipaddress.IPv4Network | ipaddress.IPv6Network
Pool = tuple[Address, Address]

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


# ---- pure rules ------------------------------------------------------------------------


def bridge_name(network_id: str) -> str:
    """The Linux bridge of a network on every host: "br-" + 11 characters of
    its id (an interface name holds at most 15)."""
    return "br-" + network_id[:11]


def check_mtu(mtu: int, field: str = "mtu") -> int:
    if mtu == 0:
        return DEFAULT_MTU
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise errors.InvalidArgument(field, f"must be between {MIN_MTU} and {MAX_MTU}")
    return mtu


def parse_address(value: str, field: str, version: int = 0) -> Address:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise errors.InvalidArgument(field, f"{value!r} is not an IP address") from None
    if version and address.version != version:
        raise errors.InvalidArgument(field, f"{value!r} is not an IPv{version} address")
    return address


def parse_cidr(value: str, ip_version: int = 0, field: str = "cidr") -> Cidr:
    """A subnet's CIDR, host bits cleared. ip_version 0 takes the CIDR's."""
    if ip_version not in (0, 4, 6):
        raise errors.InvalidArgument("ip_version", "must be 4 or 6")
    if not value.strip():
        raise errors.InvalidArgument(field, "is required")
    if "/" not in value:
        raise errors.InvalidArgument(field, f"{value!r} needs a prefix length (a.b.c.d/n)")
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise errors.InvalidArgument(field, f"{value!r} is not a CIDR") from None
    if ip_version and net.version != ip_version:
        raise errors.InvalidArgument(field, f"{value!r} is not an IPv{ip_version} CIDR")
    longest = 30 if net.version == 4 else 126
    if net.prefixlen > longest:
        raise errors.InvalidArgument(field, f"the prefix length must be at most /{longest}")
    return net


def host_range(net: Cidr) -> Pool:
    """First and last addresses a port may hold: the network address (and for
    IPv4 the broadcast address) excluded."""
    last = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
    return net.network_address + 1, last


def default_gateway(net: Cidr) -> Address:
    return host_range(net)[0]


def check_gateway(net: Cidr, value: str | None, field: str = "gateway_ip") -> Address | None:
    """None (unset): the first host address; "": no gateway; else a host
    address of the cidr."""
    if value is None:
        return default_gateway(net)
    if not value.strip():
        return None
    gateway = parse_address(value, field, net.version)
    first, last = host_range(net)
    if not first <= gateway <= last:
        raise errors.InvalidArgument(field, f"{gateway} is not a host address of {net}")
    return gateway


def default_pools(net: Cidr, gateway: Address | None) -> list[Pool]:
    """Every host address of the cidr but the gateway."""
    first, last = host_range(net)
    if gateway is None or not first <= gateway <= last:
        return [(first, last)]
    return [(a, b) for a, b in ((first, gateway - 1), (gateway + 1, last)) if a <= b]


def check_pools(net: Cidr, gateway: Address | None, pools: Sequence[tuple[str, str]],
                field: str = "allocation_pools") -> list[Pool]:
    """Requested pools, checked: inside the cidr's host range, start <= end,
    not holding the gateway, not overlapping each other. Sorted."""
    if not pools:
        return default_pools(net, gateway)
    first, last = host_range(net)
    parsed: list[tuple[Pool, str]] = []
    for i, (start_s, end_s) in enumerate(pools):
        here = f"{field}[{i}]"
        start = parse_address(start_s, f"{here}.start", net.version)
        end = parse_address(end_s, f"{here}.end", net.version)
        for value, name in ((start, "start"), (end, "end")):
            if not first <= value <= last:
                raise errors.InvalidArgument(f"{here}.{name}",
                                             f"{value} is not a host address of {net}")
        if start > end:
            raise errors.InvalidArgument(here, f"start {start} is after end {end}")
        if gateway is not None and start <= gateway <= end:
            raise errors.InvalidArgument(here, f"holds the gateway {gateway}")
        parsed.append(((start, end), here))
    parsed.sort(key=lambda p: p[0][0])
    for (a, _), (b, here) in zip(parsed, parsed[1:]):
        if b[0] <= a[1]:
            raise errors.InvalidArgument(here, f"overlaps the pool {a[0]}-{a[1]}")
    return [pool for pool, _ in parsed]


def overlapping(net: Cidr, others: Iterable[N.Subnet]) -> N.Subnet | None:
    """The first of `others` whose cidr overlaps `net`, else None."""
    for other in others:
        theirs = ipaddress.ip_network(other.cidr)
        if theirs.version == net.version and theirs.overlaps(net):
            return other
    return None


def build_subnet(network: N.Network, existing: Sequence[N.Subnet], *, cidr: str,
                 ip_version: int = 0, gateway_ip: str | None = None,
                 allocation_pools: Sequence[tuple[str, str]] = (),
                 dns_nameservers: Sequence[str] = (), name: str = "") -> N.Subnet:
    """A new subnet of `network` (id and timestamps unset), every field
    checked against the network's `existing` subnets."""
    net = parse_cidr(cidr, ip_version)
    clash = overlapping(net, existing)
    if clash is not None:
        raise errors.InvalidArgument("cidr", f"{net} overlaps subnet {clash.id} ({clash.cidr}) "
                                             "of the network")
    gateway = check_gateway(net, gateway_ip)
    pools = check_pools(net, gateway, allocation_pools)
    if len(dns_nameservers) > MAX_DNS_NAMESERVERS:
        raise errors.InvalidArgument("dns_nameservers", f"at most {MAX_DNS_NAMESERVERS}")
    dns: list[str] = []
    for i, value in enumerate(dns_nameservers):
        address = str(parse_address(value, f"dns_nameservers[{i}]"))
        if address in dns:
            raise errors.InvalidArgument(f"dns_nameservers[{i}]", f"{address} is listed twice")
        dns.append(address)
    return N.Subnet(name=name, network_id=network.id, project_id=network.project_id,
                    ip_version=net.version, cidr=str(net),
                    gateway_ip=str(gateway) if gateway is not None else "",
                    allocation_pools=[N.AllocationPool(start=str(a), end=str(b))
                                      for a, b in pools],
                    dns_nameservers=dns)


def pools_of(subnet: N.Subnet) -> list[Pool]:
    return [(ipaddress.ip_address(p.start), ipaddress.ip_address(p.end))
            for p in subnet.allocation_pools]


def in_pools(address: Address, pools: Iterable[Pool]) -> bool:
    return any(a.version == address.version and a <= address <= b for a, b in pools)


def pool_size(subnet: N.Subnet) -> int:
    return sum(int(b) - int(a) + 1 for a, b in pools_of(subnet))


def candidates(pools: Iterable[Pool], taken: set[str]) -> Iterator[str]:
    """Free addresses of the pools, lowest first."""
    for start, end in pools:
        address = start
        while address <= end:
            text = str(address)
            if text not in taken:
                yield text
            address += 1


def spread_after(losses: int) -> int:
    """The random window after `losses` lost races (0: the first free)."""
    return 0 if losses <= 0 else min(SPREAD << (losses - 1), MAX_SPREAD)


def pick(subnet: N.Subnet, taken: set[str], spread: int = 0,
         rng: random.Random | None = None) -> str | None:
    """The first free address, or with `spread` one of the first `spread`
    free ones at random; None when the pools are full."""
    found = []
    for address in candidates(pools_of(subnet), taken):
        if spread <= 1:
            return address
        found.append(address)
        if len(found) >= spread:
            break
    return (rng or random).choice(found) if found else None


def subnet_for(address: Address, subnets: Iterable[N.Subnet]) -> N.Subnet | None:
    for subnet in subnets:
        if address in ipaddress.ip_network(subnet.cidr):
            return subnet
    return None


def generate_mac() -> str:
    """fa:16:3e:xx:xx:xx from the OS CSPRNG, as Neutron makes them."""
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def check_mac(value: str, field: str = "mac_address") -> str:
    mac = value.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise errors.InvalidArgument(field, f"{value!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
    if int(mac[:2], 16) & 1:
        raise errors.InvalidArgument(field, f"{value!r} is a multicast address")
    if mac == "00:00:00:00:00:00":
        raise errors.InvalidArgument(field, "must not be all zeros")
    return mac


# ---- VIFs and network_data.json -------------------------------------------------------

def vif_for_port(port: N.Port, network: N.Network | None,
                 subnets: dict[str, N.Subnet]) -> N.Vif:
    """What a host needs to plug `port` (and the guest to configure it)."""
    vif = N.Vif(port_id=port.id, network_id=port.network_id, mac_address=port.mac_address,
                bridge=bridge_name(port.network_id),
                mtu=(network.mtu if network is not None and network.mtu else DEFAULT_MTU))
    for fixed in port.fixed_ips:
        subnet = subnets.get(fixed.subnet_id)
        address = ipaddress.ip_address(fixed.ip_address)
        vif.ips.add(subnet_id=fixed.subnet_id, ip_version=address.version,
                    ip_address=fixed.ip_address,
                    cidr=subnet.cidr if subnet else str(ipaddress.ip_network(address)),
                    gateway_ip=subnet.gateway_ip if subnet else "",
                    dns_nameservers=subnet.dns_nameservers if subnet else [])
    return vif


def network_data(ports: Iterable[N.Port], subnets: Iterable[N.Subnet],
                 networks: Iterable[N.Network]) -> dict:
    """network_data.json for `ports` (in NIC order), given the subnets and
    networks they refer to."""
    by_subnet = {s.id: s for s in subnets}
    by_network = {n.id: n for n in networks}
    return network_data_for_vifs(vif_for_port(p, by_network.get(p.network_id), by_subnet)
                                 for p in ports)


# ---- reads -----------------------------------------------------------------------------------

def visible(network: N.Network, project_id: str, is_admin: bool = False) -> bool:
    return is_admin or network.shared or network.project_id == project_id


async def get_network(store: Store, network_id: str, project_id: str,
                      is_admin: bool = False) -> Versioned:
    """A network the project sees (its own or a shared one), else NOT_FOUND."""
    found = await store.get(keys.network(network_id), N.Network) if is_uuid(network_id) else None
    if found is None or not visible(found.msg, project_id, is_admin):
        raise errors.NotFound("network", network_id)
    return found


async def get_subnet(store: Store, subnet_id: str) -> Versioned | None:
    return await store.get(keys.subnet(subnet_id), N.Subnet) if is_uuid(subnet_id) else None


async def network_subnets(store: Store, network: N.Network) -> list[N.Subnet]:
    """The network's subnets in its order."""
    found = await asyncio.gather(*(get_subnet(store, sid) for sid in network.subnets))
    return [v.msg for v in found if v is not None]


async def list_networks(store: Store) -> list[N.Network]:
    items, _ = await store.list(keys.NETWORKS, N.Network)
    return [v.msg for _, v in items]


async def get_port(store: Store, port_id: str, project_id: str,
                   is_admin: bool = False) -> Versioned:
    """The project's port (admins: any), else NOT_FOUND."""
    found = await store.get(keys.port(port_id), N.Port) if is_uuid(port_id) else None
    if found is None or not (is_admin or found.msg.project_id == project_id):
        raise errors.NotFound("port", port_id)
    return found


async def auto_network(store: Store, project_id: str) -> N.Network | None:
    """networks_mode "auto" (or no networks requested): the project's own
    network if it has exactly one (shared ones it owns do not count), else,
    when it has none, the shared network if exactly one exists; None when
    there is no candidate at all (the server gets no port). More than one
    candidate is FAILED_PRECONDITION (Nova's NetworkAmbiguous)."""
    nets = await list_networks(store)
    own = [n for n in nets if n.project_id == project_id and not n.shared]
    found = own or [n for n in nets if n.shared]
    if len(found) > 1:
        raise errors.FailedPrecondition(
            "Multiple possible networks found, use a Network ID to be more specific.")
    return found[0] if found else None


async def server_ports(store: Store, server_id: str) -> list[N.Port] | None:
    """The server's ports in NIC order; None when none was ever allocated."""
    items, _ = await store.list(keys.server_ports(server_id), wrappers_pb2.StringValue)
    if not items:
        return None
    found = await asyncio.gather(*(store.get(keys.port(v.msg.value), N.Port) for _, v in items))
    return [v.msg for v in found if v is not None]


async def vifs_for_ports(store: Store, ports: Sequence[N.Port]) -> list[N.Vif]:
    nets: dict[str, N.Network | None] = {}
    subnets: dict[str, N.Subnet] = {}
    for port in ports:
        if port.network_id not in nets:
            found = await store.get(keys.network(port.network_id), N.Network)
            nets[port.network_id] = found.msg if found else None
            if found is not None:
                subnets.update((s.id, s) for s in await network_subnets(store, found.msg))
    return [vif_for_port(p, nets.get(p.network_id), subnets) for p in ports]


async def server_vifs(store: Store, server_id: str) -> list[N.Vif]:
    """The VIFs of a server's allocated ports (empty when none)."""
    return await vifs_for_ports(store, await server_ports(store, server_id) or [])


# ---- what a request asks for ------------------------------------------------------------------

@dataclasses.dataclass
class _Target:
    """One port to write: a new one on `network`, or `existing` to bind."""
    network: N.Network
    subnets: list[N.Subnet]
    field: str = ""
    existing: Versioned | None = None
    # Requested addresses: (subnet id, address or "" for any free one, field).
    fixed: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    mac: str = ""                 # a requested MAC ("" generates one)
    name: str = ""
    security_groups: Sequence[str] = ()
    preserve: bool = False        # made through CreatePort


def _fixed_in(network: N.Network, subnets: Sequence[N.Subnet], value: str,
              field: str) -> tuple[str, str]:
    """A requested address of the network: (subnet id, address)."""
    address = parse_address(value, field)
    subnet = subnet_for(address, subnets)
    if subnet is None:
        raise errors.InvalidArgument(field, f"{address} is not in a subnet of network {network.id}")
    if not in_pools(address, pools_of(subnet)):
        raise errors.InvalidArgument(field, f"{address} is outside the allocation pools of "
                                            f"subnet {subnet.id}")
    return subnet.id, str(address)


async def _resolve(store: Store, project_id: str, requests: Sequence[Any], networks_mode: str,
                   server_id: str = "", security_groups: Sequence[str] = ()) -> list[_Target]:
    """The ports a server's network requests stand for (read and checked)."""
    if networks_mode == "none":
        return []
    if not requests:
        network = await auto_network(store, project_id)
        if network is None:
            return []
        return [_Target(network, await network_subnets(store, network), "networks",
                        security_groups=security_groups)]
    if len(requests) > MAX_PORTS_PER_SERVER:
        raise errors.InvalidArgument("networks",
                                     f"at most {MAX_PORTS_PER_SERVER} networks or ports")
    targets: list[_Target] = []
    seen_ports: set[str] = set()
    seen_ips: set[str] = set()
    for i, req in enumerate(requests):
        field = f"networks[{i}]"
        if req.port:
            if req.port in seen_ports:
                raise errors.InvalidArgument(f"{field}.port", "the same port is requested twice")
            seen_ports.add(req.port)
            if req.fixed_ip:
                raise errors.InvalidArgument(f"{field}.fixed_ip", "cannot be given with a port")
            port = await get_port(store, req.port, project_id)
            if port.msg.device_id and port.msg.device_id != server_id:
                raise errors.FailedPrecondition(f"Port {req.port} is still in use.")
            if req.uuid and req.uuid != port.msg.network_id:
                raise errors.InvalidArgument(f"{field}.port",
                                             f"port {req.port} is not on network {req.uuid}")
            network = await get_network(store, port.msg.network_id, project_id)
            targets.append(_Target(network.msg, await network_subnets(store, network.msg),
                                   field, existing=port))
            continue
        network = await get_network(store, req.uuid, project_id)
        subnets = await network_subnets(store, network.msg)
        target = _Target(network.msg, subnets, field, security_groups=security_groups)
        if req.fixed_ip:
            subnet_id, address = _fixed_in(network.msg, subnets, req.fixed_ip, f"{field}.fixed_ip")
            if address in seen_ips:
                raise errors.InvalidArgument(f"{field}.fixed_ip", f"{address} is requested twice")
            seen_ips.add(address)
            target.fixed.append((subnet_id, address, f"{field}.fixed_ip"))
        targets.append(target)
    return targets


async def validate_requests(store: Store, project_id: str, requests: Sequence[Any], *,
                            networks_mode: str = "", max_count: int = 1) -> None:
    """CreateServer's checks of `networks` (NetworkRequest-like: uuid, port,
    fixed_ip), after create.check_networks' shape checks:

    - a network the project cannot see, or a port not of the project:
      NOT_FOUND (ResourceInfo network / port);
    - a port bound to a server: FAILED_PRECONDITION ("Port X is still in use.");
    - a fixed IP outside every subnet of the network or outside the
      allocation pools: INVALID_ARGUMENT networks[i].fixed_ip; already
      allocated: ALREADY_EXISTS;
    - a port or a fixed IP with max_count > 1: INVALID_ARGUMENT (one port,
      one address, one server);
    - more than MAX_PORTS_PER_SERVER requests: INVALID_ARGUMENT networks;
    - no request and mode auto (or empty) with several candidate networks:
      FAILED_PRECONDITION (see auto_network).

    The build re-checks all of it when it allocates (a port may be taken
    meanwhile: the build then fails with the same codes)."""
    if max_count > 1:
        for i, req in enumerate(requests):
            if req.port:
                raise errors.InvalidArgument(
                    f"networks[{i}].port",
                    "a port can be used by one server only: create the servers one by one")
            if req.fixed_ip:
                raise errors.InvalidArgument(
                    f"networks[{i}].fixed_ip",
                    "a fixed IP can be used by one server only: max_count must be 1")
    targets = await _resolve(store, project_id, requests, networks_mode)
    for target in targets:
        for subnet_id, address, field in target.fixed:
            if await store.get_raw(keys.ip(subnet_id, address)) is not None:
                raise errors.AlreadyExists(
                    f"IP address {address} already allocated in subnet {subnet_id}")


# ---- writing ports ----------------------------------------------------------------------------

class _Exhausted(Exception):
    def __init__(self, subnet_ids: list[str], network_id: str):
        self.subnet_ids = subnet_ids
        if len(subnet_ids) == 1:
            message = f"No more IP addresses available on subnet {subnet_ids[0]}."
        else:
            message = f"No more IP addresses available on network {network_id}."
        super().__init__(message)
        self.message = message


def key_exists(store: Store, suffix: str) -> rpc.Compare:
    return rpc.Compare(key=store.key(suffix), result=rpc.Compare.GREATER,
                       target=rpc.Compare.VERSION, version=0)


def empty_prefix(store: Store, prefix: str) -> rpc.Compare:
    """True when no key lies under `prefix`."""
    key = store.key(prefix)
    return rpc.Compare(key=key, range_end=prefix_end(key), result=rpc.Compare.EQUAL,
                       target=rpc.Compare.VERSION, version=0)


def _count(store: Store, suffix: str, prefix: bool = False) -> rpc.RequestOp:
    key = store.key(suffix)
    return rpc.RequestOp(request_range=rpc.RangeRequest(
        key=key, range_end=prefix_end(key) if prefix else b"", count_only=True))


def _ref(port_id: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=port_id)


class _Taken:
    """Allocated addresses per subnet: listed once, and again after a race
    on the subnet was lost (`raced`)."""

    def __init__(self, store: Store):
        self.store = store
        self.by_subnet: dict[str, set[str]] = {}
        self.raced: set[str] = set()

    async def load(self, subnet_ids: Iterable[str], fresh: bool = False) -> None:
        for sid in subnet_ids:
            if sid in self.by_subnet and not fresh:
                continue
            prefix = keys.subnet_ips(sid)
            items, _ = await self.store.list(prefix, wrappers_pb2.StringValue)
            self.by_subnet[sid] = {suffix[len(prefix):] for suffix, _ in items}
            self.raced.discard(sid)

    def learn(self, subnet_id: str, address: str) -> None:
        self.by_subnet.setdefault(subnet_id, set()).add(address)
        self.raced.add(subnet_id)


@dataclasses.dataclass
class _Plan:
    ports: list[N.Port]
    compares: list[rpc.Compare]
    ops: list[rpc.RequestOp]
    probes: list[rpc.RequestOp]
    # What each probe checks: (kind, detail).
    why: list[tuple[str, Any]]


def _plan(store: Store, targets: Sequence[_Target], taken: _Taken, project_id: str,
          server_id: str, spread: int, require_instance: bool) -> _Plan:
    """Addresses and MACs for every new port, the bindings of existing ones:
    the compares, the writes, and the failure branch's probes."""
    stamp = now()
    plan = _Plan([], [], [], [], [])
    compares: dict[bytes, rpc.Compare] = {}

    def compare(c: rpc.Compare) -> None:
        compares.setdefault(c.key + b"\0" + c.range_end, c)

    def probe(suffix: str, kind: str, detail: Any, prefix: bool = False) -> None:
        plan.probes.append(_count(store, suffix, prefix))
        plan.why.append((kind, detail))

    def probe_revision(suffix: str, kind: str, revision: int) -> None:
        plan.probes.append(rpc.RequestOp(request_range=rpc.RangeRequest(
            key=store.key(suffix), keys_only=True)))
        plan.why.append((kind, revision))

    if server_id:
        compare(empty_prefix(store, keys.server_ports(server_id)))
        probe(keys.server_ports(server_id), "bound", server_id, prefix=True)
        if require_instance:
            compare(key_exists(store, keys.instance(server_id)))
            probe(keys.instance(server_id), "server", server_id)
    chosen: dict[str, set[str]] = {}
    for index, target in enumerate(targets):
        if target.existing is not None:
            port = N.Port()
            port.CopyFrom(target.existing.msg)
            pkey = keys.port(port.id)
            compare(store.mod_is(pkey, target.existing.mod_revision))
            probe_revision(pkey, "port", target.existing.mod_revision)
        else:
            port = N.Port(id=str(uuid.uuid4()), name=target.name, network_id=target.network.id,
                          project_id=project_id, mac_address=target.mac or generate_mac(),
                          security_groups=target.security_groups, status=N.Port.STATUS_DOWN,
                          preserve_on_delete=target.preserve, created_at=stamp)
            for subnet_id, address in _addresses(target, taken, chosen, spread):
                port.fixed_ips.add(subnet_id=subnet_id, ip_address=address)
            pkey = keys.port(port.id)
            compare(store.mod_is(pkey, 0))
            compare(key_exists(store, keys.network(port.network_id)))
            probe(keys.network(port.network_id), "network", port.network_id)
            compare(store.mod_is(keys.mac(port.mac_address), 0))
            probe(keys.mac(port.mac_address), "mac", (port.mac_address, bool(target.mac)))
            plan.ops += [store.put(keys.mac(port.mac_address), _ref(port.id)),
                         store.put(keys.network_port(port.network_id, port.id), _ref(port.id))]
            requested = {(sid, addr): field for sid, addr, field in target.fixed if addr}
            for fixed in port.fixed_ips:
                ikey = keys.ip(fixed.subnet_id, fixed.ip_address)
                compare(store.mod_is(ikey, 0))
                compare(key_exists(store, keys.subnet(fixed.subnet_id)))
                probe(ikey, "ip", (fixed.subnet_id, fixed.ip_address,
                                   (fixed.subnet_id, fixed.ip_address) in requested))
                probe(keys.subnet(fixed.subnet_id), "subnet", fixed.subnet_id)
                plan.ops.append(store.put(ikey, _ref(port.id)))
        if server_id:
            port.device_id, port.device_owner = server_id, DEVICE_OWNER
            port.status = N.Port.STATUS_ACTIVE
            plan.ops.append(store.put(keys.server_port(server_id, index), _ref(port.id)))
        port.updated_at.CopyFrom(stamp)
        plan.ops.append(store.put(keys.port(port.id), port))
        plan.ports.append(port)
    plan.compares = list(compares.values())
    return plan


def _addresses(target: _Target, taken: _Taken, chosen: dict[str, set[str]],
               spread: int) -> list[tuple[str, str]]:
    by_id = {s.id: s for s in target.subnets}
    out: list[tuple[str, str]] = []

    def take(subnet: N.Subnet) -> str | None:
        mine = chosen.setdefault(subnet.id, set())
        address = pick(subnet, taken.by_subnet.get(subnet.id, set()) | mine, spread)
        if address is not None:
            mine.add(address)
        return address

    if target.fixed:
        for subnet_id, address, _ in target.fixed:
            if not address:
                address = take(by_id[subnet_id])
                if address is None:
                    raise _Exhausted([subnet_id], target.network.id)
            else:
                chosen.setdefault(subnet_id, set()).add(address)
            out.append((subnet_id, address))
        return out
    for version in (4, 6):
        subnets = [s for s in target.subnets if s.ip_version == version]
        for subnet in subnets:
            address = take(subnet)
            if address is not None:
                out.append((subnet.id, address))
                break
        else:
            if subnets:
                raise _Exhausted([s.id for s in subnets], target.network.id)
    return out


def _needs_listing(targets: Sequence[_Target]) -> set[str]:
    out: set[str] = set()
    for target in targets:
        if target.existing is not None:
            continue
        if target.fixed:
            out.update(sid for sid, address, _ in target.fixed if not address)
        else:
            out.update(s.id for s in target.subnets)
    return out


# One asyncio lock per network and Store (a process's allocations on a
# network queue instead of racing; the compares stay the guarantee).
_locks: "weakref.WeakKeyDictionary[Store, dict[str, asyncio.Lock]]" = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _network_locks(store: Store, network_ids: Iterable[str]):
    table = _locks.setdefault(store, {})
    async with contextlib.AsyncExitStack() as stack:
        for network_id in sorted(set(network_ids)):
            await stack.enter_async_context(table.setdefault(network_id, asyncio.Lock()))
        yield


async def _write_ports(store: Store, project_id: str, targets: list[_Target], *,
                       server_id: str = "", require_instance: bool = False,
                       reresolve=None) -> list[N.Port] | None:
    """Write `targets` in one transaction, retrying lost races. Returns the
    ports, or None when the server got its ports from someone else meanwhile."""
    taken = _Taken(store)
    losses = 0
    for _ in range(ATTEMPTS):
        await taken.load(list(taken.raced), fresh=True)     # subnets we lost a race on
        await taken.load(_needs_listing(targets))
        try:
            plan = _plan(store, targets, taken, project_id, server_id, spread_after(losses),
                         require_instance)
        except _Exhausted as exc:
            raise errors.ResourceExhausted(exc.message) from None
        resp = await store.txn(plan.compares, plan.ops, plan.probes)
        if resp.succeeded:
            return plan.ports
        losses += 1
        again = False
        for (kind, detail), answer in zip(plan.why, resp.responses):
            found = answer.response_range
            present = found.count > 0
            if kind == "bound" and present:
                return None
            if kind == "server" and not present:
                raise errors.NotFound("server", detail)
            if kind in ("network", "subnet") and not present:
                again = True            # deleted meanwhile: read the requests again
            if kind == "port" and (not found.kvs or found.kvs[0].mod_revision != detail):
                again = True            # bound or changed meanwhile: read it again
            if kind == "mac" and present and detail[1]:
                raise errors.AlreadyExists(f"MAC address {detail[0]} is in use")
            if kind == "ip" and present:
                subnet_id, address, requested = detail
                if requested:
                    raise errors.AlreadyExists(
                        f"IP address {address} already allocated in subnet {subnet_id}")
                taken.learn(subnet_id, address)
        if again and reresolve is not None:
            targets = await reresolve()
    raise errors.Unavailable("too many concurrent allocations on this network")


async def allocate_for_server(store: Store, server_id: str, project_id: str,
                              requests: Sequence[Any], networks_mode: str = "", *,
                              security_groups: Sequence[str] = (),
                              require_instance: bool = True) -> list[N.Vif]:
    """The server's ports at NETWORKING, as VIFs in NIC order.

    `requests` are the record's NetworkRequests (uuid | port, fixed_ip):
    each network request gets a new port (device_id = the server, an
    address per IP version or the fixed IP, a fresh MAC, the server's
    `security_groups`); each port request binds that port (the project's,
    unbound). No request: `networks_mode` "none" means no port; "auto" or
    "" means one port on auto_network's pick, or none when there is none.

    All or nothing: every port, address, MAC and index is one transaction
    that also requires the instance record to exist (`require_instance`) and
    the server to have no ports yet. Idempotent: when the server already has
    ports (a retried or rescheduled build) they are returned as they are.
    Errors (final, the build should fail without rescheduling): NOT_FOUND
    network/port/server, FAILED_PRECONDITION port in use or ambiguous auto,
    ALREADY_EXISTS fixed IP taken, INVALID_ARGUMENT fixed IP not in a pool,
    RESOURCE_EXHAUSTED no free address. UNAVAILABLE: too many lost races."""
    existing = await server_ports(store, server_id)
    if existing is not None:
        return await vifs_for_ports(store, existing)

    async def resolve():
        return await _resolve(store, project_id, requests, networks_mode, server_id,
                              security_groups)

    targets = await resolve()
    if not targets:
        return []
    async with _network_locks(store, (t.network.id for t in targets if t.existing is None)):
        ports = await _write_ports(store, project_id, targets, server_id=server_id,
                                   require_instance=require_instance, reresolve=resolve)
    if ports is None:   # a concurrent call for the same server won
        return await server_vifs(store, server_id)
    _log.info("ports allocated", instance_id=server_id, ports=[p.id for p in ports],
              addresses=[f.ip_address for p in ports for f in p.fixed_ips])
    return await vifs_for_ports(store, ports)


async def create_port(store: Store, project_id: str, network: N.Network, *, name: str = "",
                      fixed_ips: Sequence[tuple[str, str]] = (), mac_address: str = "",
                      security_groups: Sequence[str] = ()) -> N.Port:
    """CreatePort: an unbound port (kept when a server using it goes).
    `fixed_ips` are (subnet id, address) pairs, either may be empty; fields
    named fixed_ips[i].subnet_id/.ip_address, mac_address."""
    if len(fixed_ips) > MAX_FIXED_IPS:
        raise errors.InvalidArgument("fixed_ips", f"at most {MAX_FIXED_IPS}")
    mac = check_mac(mac_address) if mac_address else ""

    async def resolve():
        found = await store.get(keys.network(network.id), N.Network)
        if found is None:
            raise errors.NotFound("network", network.id)
        subnets = await network_subnets(store, found.msg)
        by_id = {s.id: s for s in subnets}
        target = _Target(found.msg, subnets, mac=mac, name=name, security_groups=security_groups,
                         preserve=True)
        seen: set[str] = set()
        for i, (subnet_id, address) in enumerate(fixed_ips):
            field = f"fixed_ips[{i}]"
            if not subnet_id and not address:
                raise errors.InvalidArgument(field, "needs a subnet_id or an ip_address")
            if subnet_id and subnet_id not in by_id:
                if await get_subnet(store, subnet_id) is None:
                    raise errors.NotFound("subnet", subnet_id)
                raise errors.InvalidArgument(f"{field}.subnet_id",
                                             f"subnet {subnet_id} is not on network {network.id}")
            if address:
                sid, address = _fixed_in(found.msg, [by_id[subnet_id]] if subnet_id else subnets,
                                         address, f"{field}.ip_address")
                if address in seen:
                    raise errors.InvalidArgument(f"{field}.ip_address",
                                                 f"{address} is requested twice")
                seen.add(address)
                subnet_id = sid
            target.fixed.append((subnet_id, address, f"{field}.ip_address"))
        return [target]

    targets = await resolve()
    async with _network_locks(store, [network.id]):
        ports = await _write_ports(store, project_id, targets, reresolve=resolve)
    assert ports is not None
    _log.info("port created", port_id=ports[0].id, network_id=network.id)
    return ports[0]


def _free_ops(store: Store, port: N.Port) -> list[rpc.RequestOp]:
    """Delete a port with its addresses, MAC and network index."""
    return [store.delete(keys.port(port.id)), store.delete(keys.mac(port.mac_address)),
            store.delete(keys.network_port(port.network_id, port.id)),
            *(store.delete(keys.ip(f.subnet_id, f.ip_address)) for f in port.fixed_ips)]


async def delete_port(store: Store, current: Versioned) -> None:
    """DeletePort: an unbound port, its addresses and MAC (FAILED_PRECONDITION
    while bound)."""
    for _ in range(ATTEMPTS):
        port = current.msg
        if port.device_id:
            raise errors.FailedPrecondition(
                f"Port {port.id} is bound to server {port.device_id}; delete the server first")
        resp = await store.txn([store.mod_is(keys.port(port.id), current.mod_revision)],
                               _free_ops(store, port))
        if resp.succeeded:
            _log.info("port deleted", port_id=port.id)
            return
        fresh = await store.get(keys.port(port.id), N.Port)
        if fresh is None:
            return
        current = fresh
    raise errors.Unavailable("too many concurrent changes to this port")


async def release_for_server(store: Store, server_id: str) -> list[str]:
    """Undo allocate_for_server: ports made for the server are deleted with
    their addresses and MACs; ports the user made (preserve_on_delete) are
    unbound (device_id cleared, DOWN) and keep theirs. One transaction;
    idempotent (nothing to do: nothing written). Returns the port ids."""
    prefix = keys.server_ports(server_id)
    for _ in range(ATTEMPTS):
        items, _rev = await store.list(prefix, wrappers_pb2.StringValue)
        if not items:
            return []
        compares = [store.mod_is(suffix, v.mod_revision) for suffix, v in items]
        ops = [store.delete(prefix, prefix=True)]
        done = []
        stamp = now()
        for _suffix, ref in items:
            current = await store.get(keys.port(ref.msg.value), N.Port)
            if current is None or current.msg.device_id != server_id:
                continue
            port = current.msg
            compares.append(store.mod_is(keys.port(port.id), current.mod_revision))
            if port.preserve_on_delete:
                kept = N.Port()
                kept.CopyFrom(port)
                kept.device_id = kept.device_owner = ""
                kept.status = N.Port.STATUS_DOWN
                kept.updated_at.CopyFrom(stamp)
                ops.append(store.put(keys.port(port.id), kept))
            else:
                ops.extend(_free_ops(store, port))
            done.append(port.id)
        resp = await store.txn(compares, ops)
        if resp.succeeded:
            _log.info("ports released", instance_id=server_id, ports=done)
            return done
    raise errors.Unavailable("too many concurrent changes to this server's ports")


def may_have_ports(networks: Iterable[Any], project_id: str, requests: Sequence[Any],
                   networks_mode: str) -> bool:
    """False when a server surely gets no port: nothing requested and, for
    auto, no network of the project nor a shared one among `networks` (a
    caller's informer view: one created this very moment may be missed).
    Lets the common boot skip IPAM's reads."""
    if requests:
        return True
    if networks_mode == "none":
        return False
    return any(n.project_id == project_id or n.shared for n in networks)
