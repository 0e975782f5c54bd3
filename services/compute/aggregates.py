"""AggregateService: host aggregates (aggregates/<id>) and availability zones.

An aggregate with an availability_zone puts its hosts in that zone; hosts in
no such aggregate are in the default zone "nova" (Nova's
default_availability_zone). A host may be in several aggregates but in one
zone at most: adding it to an aggregate of another zone, or giving an
aggregate a zone that one of its hosts already has a different one of, is
FAILED_PRECONDITION. Aggregate names are unique.

Every write lists aggregates/ and commits only if no aggregate was created
or changed since that list (one range compare, `Store.prefix_unchanged`), so the
one-zone-per-host and unique-name rules hold under concurrent admins; a lost
race lists again.

Hosts are the compute nodes of nodes/ (NodeRecord, on each agent's lease):
AddAggregateHost takes a registered host only (NOT_FOUND host otherwise,
Nova's ComputeHostNotFound). Admin only, except ListAvailabilityZones.

For the create path: `zones(store)` maps every zone to its hosts and
`host_zone(aggregates, host)` gives a host's zone.
"""

from __future__ import annotations

import uuid

from nimbus import errors, log, pagination
from nimbus.compute.v1 import aggregates_pb2 as A, aggregates_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.compute.validation import validate_metadata, validate_name
from nimbus.ids import is_uuid
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store, Versioned, now

_log = log.get("nimbus.compute.aggregates")

DEFAULT_AZ = "nova"
MAX_ZONE = 255
ATTEMPTS = 50


def validate_zone(zone: str, field: str = "availability_zone") -> str:
    """Empty (no zone) or 1-255 characters without ':' (the 'zone:host' syntax)
    and without control characters, not blank."""
    if zone == "":
        return zone
    stripped = zone.strip()
    if not stripped:
        raise errors.InvalidArgument(field, "must not be blank")
    if len(stripped) > MAX_ZONE:
        raise errors.InvalidArgument(field, f"must be at most {MAX_ZONE} characters")
    if ":" in stripped:
        raise errors.InvalidArgument(field, "must not contain ':'")
    if any(ord(ch) < 32 for ch in stripped):
        raise errors.InvalidArgument(field, "must not contain control characters")
    return stripped


def host_zone(aggregates, host: str) -> str:
    """The host's zone among `aggregates` (Aggregate messages), or DEFAULT_AZ."""
    for agg in aggregates:
        if agg.availability_zone and host in agg.hosts:
            return agg.availability_zone
    return DEFAULT_AZ


async def list_aggregates(store: Store) -> tuple[list[Versioned], int]:
    items, revision = await store.list(keys.AGGREGATES, A.Aggregate)
    return [v for _, v in items], revision


def zone_hosts(aggregates, node_hosts) -> dict[str, set[str]]:
    """Zone -> hosts from Aggregate messages and the registered hosts: the
    zones of aggregates that have hosts, and DEFAULT_AZ with the registered
    hosts that are in no zone."""
    out: dict[str, set[str]] = {}
    zoned: set[str] = set()
    for agg in aggregates:
        if agg.availability_zone and agg.hosts:
            out.setdefault(agg.availability_zone, set()).update(agg.hosts)
            zoned.update(agg.hosts)
    free = set(node_hosts) - zoned
    if free:
        out.setdefault(DEFAULT_AZ, set()).update(free)
    return out


async def zones(store: Store) -> dict[str, set[str]]:
    """Every availability zone with its hosts (see zone_hosts), for
    CreateServer's availability_zone and the scheduler. A zone whose hosts
    are all down is still there."""
    aggregates, _ = await list_aggregates(store)
    nodes, _ = await store.list(keys.NODES, records_pb2.NodeRecord)
    return zone_hosts((v.msg for v in aggregates), (v.msg.host for _, v in nodes))


def _zone_conflict(aggregates: list[Versioned], agg_id: str, zone: str, host: str) -> str | None:
    """The other zone `host` is in, if it would be in two zones with `zone`."""
    if not zone:
        return None
    for v in aggregates:
        other = v.msg
        if other.id != agg_id and host in other.hosts and other.availability_zone \
                and other.availability_zone != zone:
            return other.availability_zone
    return None


class AggregateServicer(aggregates_pb2_grpc.AggregateServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def _change(self, agg_id: str, change) -> A.Aggregate:
        """Read every aggregate, let `change(aggregates, current)` return the
        new record (or None: delete it), write only if nothing changed since."""
        store = self.store
        for _ in range(ATTEMPTS):
            aggregates, revision = await list_aggregates(store)
            current = next((v for v in aggregates if v.msg.id == agg_id), None)
            if current is None:
                raise errors.NotFound("aggregate", agg_id)
            new = A.Aggregate()
            new.CopyFrom(current.msg)
            result = await change(aggregates, new)
            key = keys.aggregate(agg_id)
            op = store.delete(key) if result is None else store.put(key, result)
            resp = await store.txn([store.prefix_unchanged(keys.AGGREGATES, revision),
                                    store.mod_is(key, current.mod_revision)], [op])
            if resp.succeeded:
                return result if result is not None else current.msg
        raise errors.Unavailable("too many concurrent changes to aggregates; retry")

    async def _aggregate(self, agg_id: str) -> Versioned:
        if not agg_id:
            raise errors.InvalidArgument("id", "is required")
        found = await self.store.get(keys.aggregate(agg_id), A.Aggregate) if is_uuid(agg_id) else None
        if found is None:
            raise errors.NotFound("aggregate", agg_id)
        return found

    async def CreateAggregate(self, request, context):
        auth.require_admin()
        name = validate_name(request.name)
        zone = validate_zone(request.availability_zone)
        validate_metadata(request.metadata)
        created = now()
        agg = A.Aggregate(id=str(uuid.uuid4()), name=name, availability_zone=zone,
                          metadata=request.metadata, created_at=created, updated_at=created)
        store = self.store
        key = keys.aggregate(agg.id)
        for _ in range(ATTEMPTS):
            aggregates, revision = await list_aggregates(store)
            if any(v.msg.name == name for v in aggregates):
                raise errors.AlreadyExists(f"an aggregate named {name!r} exists")
            resp = await store.txn([store.prefix_unchanged(keys.AGGREGATES, revision),
                                    store.mod_is(key, 0)], [store.put(key, agg)])
            if resp.succeeded:
                _log.info("aggregate created", aggregate_id=agg.id, availability_zone=zone)
                return A.CreateAggregateResponse(aggregate=agg)
        raise errors.Unavailable("too many concurrent changes to aggregates; retry")

    async def GetAggregate(self, request, context):
        auth.require_admin()
        return A.GetAggregateResponse(aggregate=(await self._aggregate(request.id)).msg)

    async def ListAggregates(self, request, context):
        auth.require_admin()
        aggregates, _ = await list_aggregates(self.store)
        page, token = pagination.page_of(request, [v.msg for v in aggregates],
                                         lambda a: [a.name, a.id])
        return A.ListAggregatesResponse(aggregates=page, next_page_token=token)

    async def UpdateAggregate(self, request, context):
        auth.require_admin()
        await self._aggregate(request.id)
        name = validate_name(request.name) if request.HasField("name") else None
        zone = (validate_zone(request.availability_zone)
                if request.HasField("availability_zone") else None)
        for i, key in enumerate(request.remove_metadata):
            if key in request.metadata:
                raise errors.InvalidArgument(f"remove_metadata[{i}]", "is also set in metadata")

        async def change(aggregates, agg: A.Aggregate):
            if name is not None and name != agg.name:
                if any(v.msg.name == name for v in aggregates):
                    raise errors.AlreadyExists(f"an aggregate named {name!r} exists")
                agg.name = name
            if zone is not None and zone != agg.availability_zone:
                for host in agg.hosts:
                    other = _zone_conflict(aggregates, agg.id, zone, host)
                    if other:
                        raise errors.FailedPrecondition(
                            f"host {host} is already in availability zone {other!r}")
                busy = await self._hosts_with_servers(agg.hosts)
                if busy:
                    raise errors.FailedPrecondition(
                        f"cannot change the availability zone: servers run on {', '.join(busy)}")
                agg.availability_zone = zone
            for key in request.remove_metadata:
                agg.metadata.pop(key, None)
            agg.metadata.update(request.metadata)
            validate_metadata(agg.metadata)
            agg.updated_at.CopyFrom(now())
            return agg

        updated = await self._change(request.id, change)
        return A.UpdateAggregateResponse(aggregate=updated)

    async def _hosts_with_servers(self, hosts) -> list[str]:
        if not hosts:
            return []
        items, _ = await self.store.list(keys.INSTANCES, records_pb2.InstanceRecord)
        return sorted({v.msg.server.host for _, v in items} & set(hosts))

    async def DeleteAggregate(self, request, context):
        auth.require_admin()
        await self._aggregate(request.id)

        async def change(aggregates, agg: A.Aggregate):
            if agg.hosts:
                raise errors.FailedPrecondition(
                    f"aggregate {agg.name!r} still has hosts: remove them first")
            return None

        await self._change(request.id, change)
        _log.info("aggregate deleted", aggregate_id=request.id)
        return A.DeleteAggregateResponse()

    async def AddAggregateHost(self, request, context):
        auth.require_admin()
        await self._aggregate(request.id)
        if not request.host:
            raise errors.InvalidArgument("host", "is required")
        if await self.store.get_raw(keys.node(request.host)) is None:
            raise errors.NotFound("host", request.host)

        async def change(aggregates, agg: A.Aggregate):
            if request.host in agg.hosts:
                raise errors.AlreadyExists(f"host {request.host} is already in aggregate {agg.name!r}")
            other = _zone_conflict(aggregates, agg.id, agg.availability_zone, request.host)
            if other:
                raise errors.FailedPrecondition(
                    f"host {request.host} is already in availability zone {other!r}")
            hosts = sorted([*agg.hosts, request.host])
            del agg.hosts[:]
            agg.hosts.extend(hosts)
            agg.updated_at.CopyFrom(now())
            return agg

        updated = await self._change(request.id, change)
        _log.info("aggregate host added", aggregate_id=request.id, host=request.host)
        return A.AddAggregateHostResponse(aggregate=updated)

    async def RemoveAggregateHost(self, request, context):
        auth.require_admin()
        await self._aggregate(request.id)
        if not request.host:
            raise errors.InvalidArgument("host", "is required")

        async def change(aggregates, agg: A.Aggregate):
            if request.host not in agg.hosts:
                raise errors.NotFound("host", request.host)
            kept = [h for h in agg.hosts if h != request.host]
            del agg.hosts[:]
            agg.hosts.extend(kept)
            agg.updated_at.CopyFrom(now())
            return agg

        updated = await self._change(request.id, change)
        _log.info("aggregate host removed", aggregate_id=request.id, host=request.host)
        return A.RemoveAggregateHostResponse(aggregate=updated)

    async def ListAvailabilityZones(self, request, context):
        who = auth.identity()
        aggregates, _ = await list_aggregates(self.store)
        nodes, _ = await self.store.list(keys.NODES, records_pb2.NodeRecord)
        up = {v.msg.host for _, v in nodes if not v.msg.disabled}
        members = zone_hosts((v.msg for v in aggregates), (v.msg.host for _, v in nodes))
        zones = [A.AvailabilityZone(name=name, available=bool(members[name] & up),
                                    hosts=sorted(members[name]) if who.is_admin else [])
                 for name in members]
        page, token = pagination.page_of(request, zones, lambda z: [z.name], who.is_admin)
        return A.ListAvailabilityZonesResponse(zones=page, next_page_token=token)
