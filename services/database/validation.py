"""CreateInstance's checks (Trove's InstanceController.create and
Instance.create): the request's shape first, then its references
(datastore, version, flavor, zone, networks) through ComputeService like
any client. Malformed is INVALID_ARGUMENT with the field, a missing
reference NOT_FOUND with its kind."""

from __future__ import annotations

import dataclasses

import grpc

from nimbus import errors
from nimbus.compute.v1 import aggregates_pb2 as AG
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import networks_pb2 as N
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import datastores_pb2 as S
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database import naming
from nimbus.services.database.datastores import resolve
from nimbus.store import keys

LOCALITIES = {"affinity": 1, "anti-affinity": 2}   # ServerGroup.Policy
MAX_REPLICAS = 3


@dataclasses.dataclass
class Resolved:
    datastore: S.Datastore
    version: S.DatastoreVersion
    flavor: C.Flavor
    restore: R.BackupRecord | None = None
    request: D.CreateInstanceRequest | None = None   # as a replica's source completed it
    source: D.Instance | None = None


def check_shape(req: D.CreateInstanceRequest) -> None:
    name = req.name.strip()
    if not name or len(name) > 255:
        raise errors.InvalidArgument("name", "1 to 255 characters are required")
    if req.replica_of:
        check_replica_shape(req)
    elif req.replica_count:
        raise errors.InvalidArgument("replica_count", "applies only with replica_of")
    elif not req.flavor_ref:
        raise errors.InvalidArgument("flavor_ref", "a flavor is required")
    if req.locality and req.locality not in LOCALITIES:
        raise errors.InvalidArgument("locality", "one of affinity, anti-affinity")
    if req.volume.size_gb < 0:
        raise errors.InvalidArgument("volume.size_gb", "must be positive")


def check_replica_shape(req: D.CreateInstanceRequest) -> None:
    """Trove's replica rules: the source gives the datastore, the flavor,
    the volume, the databases and the users."""
    if not 0 <= req.replica_count <= MAX_REPLICAS:
        raise errors.InvalidArgument("replica_count", f"1 to {MAX_REPLICAS}")
    for field, given in (("flavor_ref", req.flavor_ref), ("volume.size_gb", req.volume.size_gb),
                         ("databases", len(req.databases)), ("users", len(req.users)),
                         ("restore_point", req.HasField("restore_point"))):
        if given:
            raise errors.InvalidArgument(field, "a replica takes it from its source (replica_of)")


async def replica_source(store, req: D.CreateInstanceRequest, who) -> D.Instance:
    """The source: the caller's, ACTIVE, not itself a replica."""
    got = await store.get(keys.db_instance(req.replica_of), R.InstanceRecord)
    if got is None or (got.msg.instance.project_id != who.project_id and not who.is_admin):
        raise errors.NotFound("database instance", req.replica_of)
    source = got.msg.instance
    if source.replica_of:
        raise errors.InvalidArgument("replica_of", "Cannot create a replica of a replica: "
                                     f"{source.id} replicates {source.replica_of}")
    if req.datastore.type and req.datastore.type != source.datastore.type:
        raise errors.InvalidArgument("datastore.type", f"the source is {source.datastore.type}")
    if source.status != D.INSTANCE_STATUS_ACTIVE:
        raise errors.FailedPrecondition(f"the source {source.id} is "
                                        f"{D.InstanceStatus.Name(source.status)}, not ACTIVE")
    return source


def replica_request(req: D.CreateInstanceRequest, source: D.Instance) -> D.CreateInstanceRequest:
    """The request as its source completes it."""
    out = D.CreateInstanceRequest()
    out.CopyFrom(req)
    out.datastore.CopyFrom(source.datastore)
    out.flavor_ref = source.flavor_ref
    out.volume.CopyFrom(source.volume)
    return out


def check_schema(manager: str, databases, users, field_prefix: str = "") -> None:
    """Names valid for the datastore, no duplicates, passwords long enough."""
    seen_dbs = set()
    for i, db in enumerate(databases):
        problem = naming.database_problem(manager, db.name)
        if problem:
            raise errors.InvalidArgument(f"{field_prefix}databases[{i}].name", problem)
        if db.name in seen_dbs:
            raise errors.InvalidArgument(f"{field_prefix}databases[{i}].name",
                                         f"database {db.name!r} is listed twice")
        if manager != "mariadb" and (db.character_set or db.collate):
            raise errors.InvalidArgument(f"{field_prefix}databases[{i}]",
                                         "character_set and collate apply to mariadb only")
        seen_dbs.add(db.name)
    seen_users = set()
    for i, user in enumerate(users):
        problem = naming.user_problem(manager, user.name, user.host)
        if problem:
            raise errors.InvalidArgument(f"{field_prefix}users[{i}].name", problem)
        problem = naming.password_problem(user.password)
        if problem:
            raise errors.InvalidArgument(f"{field_prefix}users[{i}].password", problem)
        key = (user.name, user.host or "%")
        if key in seen_users:
            raise errors.InvalidArgument(f"{field_prefix}users[{i}].name",
                                         f"user {user.name!r} is listed twice")
        seen_users.add(key)
        for j, db in enumerate(user.databases):
            problem = naming.database_problem(manager, db)
            if problem:
                raise errors.InvalidArgument(f"{field_prefix}users[{i}].databases[{j}]", problem)


def check_users_databases(req: D.CreateInstanceRequest) -> None:
    """At create, a user's databases must be among the request's."""
    names = {db.name for db in req.databases}
    for i, user in enumerate(req.users):
        for j, db in enumerate(user.databases):
            if db not in names:
                raise errors.InvalidArgument(f"users[{i}].databases[{j}]",
                                             f"database {db!r} is not among the request's databases")


def check_volume(req: D.CreateInstanceRequest, version: S.DatastoreVersion) -> None:
    size = req.volume.size_gb
    if version.volume_support:
        if size <= 0:
            raise errors.InvalidArgument("volume.size_gb", "a volume size is required for this datastore")
        if size > version.max_accepted_volume_size:
            raise errors.InvalidArgument(
                "volume.size_gb", f"volume size {size} GB exceeds the maximum accepted "
                f"{version.max_accepted_volume_size} GB")
    elif size:
        raise errors.InvalidArgument("volume.size_gb", "this datastore version does not use volumes")


async def _call(call, not_found: errors.NotFound, field: str):
    """ComputeService's answer about a reference, as this API's error on `field`."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise not_found from None
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED):
            raise errors.InvalidArgument(field, exc.details()) from None
        raise


async def check_flavor(compute, flavor_ref: str, version: S.DatastoreVersion,
                       datastore: str = "") -> C.Flavor:
    """The flavor exists in ComputeService and the version allows it."""
    flavor = (await _call(compute.compute.GetFlavor(C.GetFlavorRequest(ref=flavor_ref),
                                                    metadata=compute.metadata),
                          errors.NotFound("flavor", flavor_ref), "flavor_ref")).flavor
    if version.flavors and not {flavor.id, flavor.name} & set(version.flavors):
        raise errors.InvalidArgument("flavor_ref", f"flavor {flavor_ref} is not allowed for "
                                     f"datastore {datastore} version {version.name}")
    return flavor


async def check_create(req: D.CreateInstanceRequest, store, default_datastore: str,
                       compute, backups=None, who=None) -> Resolved:
    check_shape(req)
    source = None
    if req.replica_of:
        source = await replica_source(store, req, who)
        req = replica_request(req, source)
    ds, version = await resolve(store, req.datastore.type, req.datastore.version, default_datastore)
    check_volume(req, version)
    check_schema(version.manager, req.databases, req.users)
    check_users_databases(req)
    flavor = await check_flavor(compute, req.flavor_ref, version, ds.name)
    if req.availability_zone:
        zones = (await compute.aggregates.ListAvailabilityZones(
            AG.ListAvailabilityZonesRequest(), metadata=compute.metadata)).zones
        if req.availability_zone not in {z.name for z in zones}:
            raise errors.NotFound("availability_zone", req.availability_zone)
    for i, nic in enumerate(req.nics):
        await _call(compute.networks.GetNetwork(N.GetNetworkRequest(id=nic), metadata=compute.metadata),
                    errors.NotFound("network", nic), f"nics[{i}]")
    restore = None
    if req.HasField("restore_point"):
        restore = await backups.restore_source(who.project_id, who.is_admin, req.restore_point.backup_ref,
                                               ds.name, req.volume.size_gb, version.volume_support)
    return Resolved(ds, version, flavor, restore, req, source)
