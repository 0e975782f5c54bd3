"""NetworkService: networks, subnets and ports (Neutron's core API); the
addresses and MACs are nimbus.ipam's.

Visibility. A project sees its own networks and the shared ones (only
admins create shared networks; admins see everything). Subnets are seen
with their network. Ports are the project's own. What a project cannot
see is NOT_FOUND (ResourceInfo network/subnet/port), as for servers; a
malformed id is NOT_FOUND too. Changing or deleting a network or subnet
(and adding a subnet) is for the network's owner or an admin: others who
see a shared network get PERMISSION_DENIED.

Consistency, all by etcd compares:
- a subnet joins its network in one transaction with the network's
  mod_revision compared (concurrent subnets of one network cannot overlap);
- a network delete requires that no key lies under network-ports/<id>/
  (a port being created compares that its network exists: one of the two
  loses), and removes the subnets with it;
- a subnet delete requires that no key lies under ips/<subnet>/ (an
  allocation compares that its subnet exists).
"""

from __future__ import annotations

import uuid

from nimbus import errors, ipam, log, pagination
from nimbus.compute.v1 import networks_pb2 as N, networks_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.compute.security_groups import resolve_security_groups
from nimbus.services.compute.validation import validate_name
from nimbus.store import keys
from nimbus.store.store import Store, Versioned, now

_log = log.get("nimbus.compute.networks")

ATTEMPTS = 50


def _name(value: str, field: str = "name") -> str:
    """Names are optional here (as in Neutron); a given one is checked."""
    return validate_name(value, field) if value else ""


def _require_id(value: str, field: str = "id") -> str:
    if not value:
        raise errors.InvalidArgument(field, "is required")
    return value


def _check_owner(network: N.Network, who: auth.Identity) -> None:
    if not who.is_admin and network.project_id != who.project_id:
        raise errors.PermissionDenied(
            f"network {network.id} belongs to another project: only its owner or an admin "
            "may change it")


class NetworkServicer(networks_pb2_grpc.NetworkServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    # ---- reads shared by the handlers --------------------------------------------

    async def _network(self, network_id: str, who: auth.Identity) -> Versioned:
        return await ipam.get_network(self.store, network_id, who.project_id, who.is_admin)

    async def _subnet(self, subnet_id: str, who: auth.Identity) -> tuple[Versioned, Versioned]:
        """(subnet, its network) when the caller sees the network."""
        found = await ipam.get_subnet(self.store, subnet_id)
        if found is not None:
            network = await self.store.get(keys.network(found.msg.network_id), N.Network)
            if network is not None and ipam.visible(network.msg, who.project_id, who.is_admin):
                return found, network
        raise errors.NotFound("subnet", subnet_id)

    # ---- networks ------------------------------------------------------------------

    async def CreateNetwork(self, request, context):
        who = auth.identity()
        name = _name(request.name)
        if request.shared and not who.is_admin:
            raise errors.PermissionDenied("only admins may create shared networks")
        mtu = ipam.check_mtu(request.mtu)
        created = now()
        network = N.Network(id=str(uuid.uuid4()), name=name, project_id=who.project_id,
                            shared=request.shared, mtu=mtu, created_at=created,
                            updated_at=created)
        await self.store.create(keys.network(network.id), network)
        _log.info("network created", network_id=network.id, shared=network.shared)
        return N.CreateNetworkResponse(network=network)

    async def GetNetwork(self, request, context):
        who = auth.identity()
        found = await self._network(_require_id(request.id), who)
        return N.GetNetworkResponse(network=found.msg)

    async def ListNetworks(self, request, context):
        who = auth.identity()
        nets = [n for n in await ipam.list_networks(self.store)
                if ipam.visible(n, who.project_id, who.is_admin)]
        page, token = pagination.page_of(request, nets, lambda n: [n.name, n.id],
                                         who.project_id, who.is_admin)
        return N.ListNetworksResponse(networks=page, next_page_token=token)

    async def UpdateNetwork(self, request, context):
        who = auth.identity()
        current = await self._network(_require_id(request.id), who)
        _check_owner(current.msg, who)
        name = _name(request.name) if request.HasField("name") else None

        def mutate(network: N.Network):
            if name is not None:
                network.name = name
            network.updated_at.CopyFrom(now())

        updated = await self.store.update(keys.network(current.msg.id), N.Network, mutate,
                                          not_found=errors.NotFound("network", request.id))
        return N.UpdateNetworkResponse(network=updated.msg)

    async def DeleteNetwork(self, request, context):
        who = auth.identity()
        store = self.store
        for _ in range(ATTEMPTS):
            current = await self._network(_require_id(request.id), who)
            network = current.msg
            _check_owner(network, who)
            in_use = await store.count(keys.network_ports(network.id))
            if in_use:
                raise errors.FailedPrecondition(
                    f"Unable to complete operation on network {network.id}. There are "
                    f"{in_use} port(s) still on the network.")
            compares = [store.mod_is(keys.network(network.id), current.mod_revision),
                        ipam.empty_prefix(store, keys.network_ports(network.id))]
            ops = [store.delete(keys.network(network.id)),
                   *(store.delete(keys.subnet(sid)) for sid in network.subnets)]
            resp = await store.txn(compares, ops)
            if resp.succeeded:
                _log.info("network deleted", network_id=network.id)
                return N.DeleteNetworkResponse()
        raise errors.Unavailable("too many concurrent changes to this network")

    # ---- subnets ---------------------------------------------------------------------

    async def CreateSubnet(self, request, context):
        who = auth.identity()
        store = self.store
        _require_id(request.network_id, "network_id")
        name = _name(request.name)
        gateway = request.gateway_ip if request.HasField("gateway_ip") else None
        pools = [(p.start, p.end) for p in request.allocation_pools]
        for _ in range(ATTEMPTS):
            current = await self._network(request.network_id, who)
            _check_owner(current.msg, who)
            existing = await ipam.network_subnets(store, current.msg)
            subnet = ipam.build_subnet(current.msg, existing, cidr=request.cidr,
                                       ip_version=request.ip_version, gateway_ip=gateway,
                                       allocation_pools=pools,
                                       dns_nameservers=list(request.dns_nameservers), name=name)
            if len(current.msg.subnets) >= ipam.MAX_SUBNETS:
                raise errors.ResourceExhausted(
                    f"a network has at most {ipam.MAX_SUBNETS} subnets")
            created = now()
            subnet.id = str(uuid.uuid4())
            subnet.created_at.CopyFrom(created)
            subnet.updated_at.CopyFrom(created)
            network = N.Network()
            network.CopyFrom(current.msg)
            network.subnets.append(subnet.id)
            network.updated_at.CopyFrom(created)
            resp = await store.txn(
                [store.mod_is(keys.network(network.id), current.mod_revision),
                 store.mod_is(keys.subnet(subnet.id), 0)],
                [store.put(keys.subnet(subnet.id), subnet),
                 store.put(keys.network(network.id), network)])
            if resp.succeeded:
                _log.info("subnet created", subnet_id=subnet.id, network_id=network.id,
                          cidr=subnet.cidr)
                return N.CreateSubnetResponse(subnet=subnet)
        raise errors.Unavailable("too many concurrent changes to this network")

    async def GetSubnet(self, request, context):
        who = auth.identity()
        subnet, _ = await self._subnet(_require_id(request.id), who)
        return N.GetSubnetResponse(subnet=subnet.msg)

    async def ListSubnets(self, request, context):
        who = auth.identity()
        if request.network_id:
            network = await self._network(request.network_id, who)
            subnets = await ipam.network_subnets(self.store, network.msg)
            position = {s.id: i for i, s in enumerate(subnets)}

            def order(s):   # the network's own order of its subnets
                return [position[s.id], s.id]
        else:
            seen = {n.id for n in await ipam.list_networks(self.store)
                    if ipam.visible(n, who.project_id, who.is_admin)}
            items, _ = await self.store.list(keys.SUBNETS, N.Subnet)
            subnets = [v.msg for _, v in items if v.msg.network_id in seen]

            def order(s):
                return [s.network_id, s.name, s.id]
        page, token = pagination.page_of(request, subnets, order,
                                         who.project_id, who.is_admin, request.network_id)
        return N.ListSubnetsResponse(subnets=page, next_page_token=token)

    async def UpdateSubnet(self, request, context):
        who = auth.identity()
        subnet, network = await self._subnet(_require_id(request.id), who)
        _check_owner(network.msg, who)
        name = _name(request.name) if request.HasField("name") else None

        def mutate(s: N.Subnet):
            if name is not None:
                s.name = name
            s.updated_at.CopyFrom(now())

        updated = await self.store.update(keys.subnet(subnet.msg.id), N.Subnet, mutate,
                                          not_found=errors.NotFound("subnet", request.id))
        return N.UpdateSubnetResponse(subnet=updated.msg)

    async def DeleteSubnet(self, request, context):
        who = auth.identity()
        store = self.store
        for _ in range(ATTEMPTS):
            subnet, current = await self._subnet(_require_id(request.id), who)
            _check_owner(current.msg, who)
            sid = subnet.msg.id
            allocated = await store.count(keys.subnet_ips(sid))
            if allocated:
                raise errors.FailedPrecondition(
                    f"Unable to complete operation on subnet {sid}: {allocated} address(es) "
                    "are allocated from it.")
            network = N.Network()
            network.CopyFrom(current.msg)
            kept = [s for s in network.subnets if s != sid]
            del network.subnets[:]
            network.subnets.extend(kept)
            network.updated_at.CopyFrom(now())
            resp = await store.txn(
                [store.mod_is(keys.network(network.id), current.mod_revision),
                 store.mod_is(keys.subnet(sid), subnet.mod_revision),
                 ipam.empty_prefix(store, keys.subnet_ips(sid))],
                [store.delete(keys.subnet(sid)), store.put(keys.network(network.id), network)])
            if resp.succeeded:
                _log.info("subnet deleted", subnet_id=sid)
                return N.DeleteSubnetResponse()
        raise errors.Unavailable("too many concurrent changes to this network")

    # ---- ports -----------------------------------------------------------------------------

    async def CreatePort(self, request, context):
        who = auth.identity()
        _require_id(request.network_id, "network_id")
        name = _name(request.name)
        network = await self._network(request.network_id, who)
        groups = await resolve_security_groups(self.store, who.project_id,
                                               request.security_groups)
        port = await ipam.create_port(
            self.store, who.project_id, network.msg, name=name,
            fixed_ips=[(f.subnet_id, f.ip_address) for f in request.fixed_ips],
            mac_address=request.mac_address, security_groups=[g.name for g in groups])
        return N.CreatePortResponse(port=port)

    async def GetPort(self, request, context):
        who = auth.identity()
        found = await ipam.get_port(self.store, _require_id(request.id), who.project_id,
                                    who.is_admin)
        return N.GetPortResponse(port=found.msg)

    async def ListPorts(self, request, context):
        who = auth.identity()
        items, _ = await self.store.list(keys.PORTS, N.Port)
        ports = [v.msg for _, v in items
                 if (who.is_admin or v.msg.project_id == who.project_id)
                 and (not request.network_id or v.msg.network_id == request.network_id)
                 and (not request.device_id or v.msg.device_id == request.device_id)]
        page, token = pagination.page_of(request, ports, lambda p: [p.network_id, p.name, p.id],
                                         who.project_id, who.is_admin, request.network_id,
                                         request.device_id)
        return N.ListPortsResponse(ports=page, next_page_token=token)

    async def UpdatePort(self, request, context):
        who = auth.identity()
        current = await ipam.get_port(self.store, _require_id(request.id), who.project_id,
                                      who.is_admin)
        name = _name(request.name) if request.HasField("name") else None

        def mutate(port: N.Port):
            if name is not None:
                port.name = name
            port.updated_at.CopyFrom(now())

        updated = await self.store.update(keys.port(current.msg.id), N.Port, mutate,
                                          current=current,
                                          not_found=errors.NotFound("port", request.id))
        return N.UpdatePortResponse(port=updated.msg)

    async def DeletePort(self, request, context):
        who = auth.identity()
        current = await ipam.get_port(self.store, _require_id(request.id), who.project_id,
                                      who.is_admin)
        await ipam.delete_port(self.store, current)
        return N.DeletePortResponse()
