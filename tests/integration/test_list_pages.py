"""Every List RPC pages as ListServers does (nimbus.pagination): small pages
walk every item exactly once in the unpaged order, and a token is refused
when it does not decode or was issued for another list or another caller."""

import grpc
import pytest

from nimbus.compute.v1 import aggregates_pb2 as AG
from nimbus.compute.v1 import aggregates_pb2_grpc
from nimbus.compute.v1 import hypervisors_pb2 as H
from nimbus.compute.v1 import hypervisors_pb2_grpc
from nimbus.compute.v1 import keypairs_pb2 as K
from nimbus.compute.v1 import keypairs_pb2_grpc
from nimbus.compute.v1 import networks_pb2 as N
from nimbus.compute.v1 import networks_pb2_grpc
from nimbus.compute.v1 import security_groups_pb2 as SG
from nimbus.compute.v1 import security_groups_pb2_grpc
from nimbus.compute.v1 import server_groups_pb2 as G
from nimbus.compute.v1 import server_groups_pb2_grpc
from nimbus.database.v1 import backups_pb2 as B
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import datastores_pb2 as S
from nimbus.volume.v1 import volume_pb2 as V
from dbstack import DbStack
from stack import ADMIN, C, expect, user

COUNT = 5
DBUSER = user("carol", "dbs")   # a project without networks: its database servers need no NIC

# (stub, list RPC, request, answer field, caller[, {request field: what `filled` made}])
LISTS = {
    "flavors": ("compute", "ListFlavors", C.ListFlavorsRequest, "flavors", user()),
    "images": ("compute", "ListImages", C.ListImagesRequest, "images", user()),
    "keypairs": ("keypairs", "ListKeypairs", K.ListKeypairsRequest, "keypairs", user()),
    "networks": ("networks", "ListNetworks", N.ListNetworksRequest, "networks", user()),
    "subnets": ("networks", "ListSubnets", N.ListSubnetsRequest, "subnets", user()),
    "ports": ("networks", "ListPorts", N.ListPortsRequest, "ports", user()),
    "security_groups": ("security_groups", "ListSecurityGroups", SG.ListSecurityGroupsRequest,
                        "security_groups", user()),
    "server_groups": ("server_groups", "ListServerGroups", G.ListServerGroupsRequest,
                      "server_groups", user()),
    "aggregates": ("aggregates", "ListAggregates", AG.ListAggregatesRequest, "aggregates", ADMIN),
    "hypervisors": ("hypervisors", "ListHypervisors", H.ListHypervisorsRequest, "hypervisors",
                    ADMIN),
    "availability_zones": ("aggregates", "ListAvailabilityZones", AG.ListAvailabilityZonesRequest,
                           "zones", user()),
    "server_migrations": ("compute", "ListServerMigrations", C.ListServerMigrationsRequest,
                          "migrations", user(), {"id": "server"}),
    "flavor_access": ("compute", "ListFlavorAccess", C.ListFlavorAccessRequest, "project_ids",
                      ADMIN, {"flavor_ref": "private_flavor"}),
    "volume_types": ("volumes", "ListVolumeTypes", V.ListVolumeTypesRequest, "volume_types",
                     user()),
    "datastores": ("datastores", "ListDatastores", S.ListDatastoresRequest, "datastores", user()),
    "db_instances": ("db", "ListInstances", D.ListInstancesRequest, "instances", DBUSER),
    "db_databases": ("db", "ListDatabases", D.ListDatabasesRequest, "databases", DBUSER,
                     {"instance_id": "db_instance"}),
    "db_users": ("db", "ListUsers", D.ListUsersRequest, "users", DBUSER,
                 {"instance_id": "db_instance"}),
    "backups": ("backups", "ListBackups", B.ListBackupsRequest, "backups", DBUSER),
}


def _id(item) -> str:
    if isinstance(item, str):
        return item
    return getattr(item, "id", "") or getattr(item, "name", "") or item.host


@pytest.fixture(scope="module")
async def filled(etcd, tmp_path_factory, qcow2_image):
    async with DbStack(etcd.endpoint, str(tmp_path_factory.mktemp("pages")), qcow2_image,
                       hosts=COUNT) as dbs:
        s = dbs.stack
        stubs = {"compute": s.api, "volumes": s.volumes, "db": dbs.db,
                 "datastores": dbs.datastores, "backups": dbs.backups,
                 "keypairs": keypairs_pb2_grpc.KeypairServiceStub(s.channel),
                 "networks": networks_pb2_grpc.NetworkServiceStub(s.channel),
                 "security_groups": security_groups_pb2_grpc.SecurityGroupServiceStub(s.channel),
                 "server_groups": server_groups_pb2_grpc.ServerGroupServiceStub(s.channel),
                 "aggregates": aggregates_pb2_grpc.AggregateServiceStub(s.channel),
                 "hypervisors": hypervisors_pb2_grpc.HypervisorServiceStub(s.channel)}
        for i in range(COUNT):
            await s.flavor(f"f-{i}", ram_mb=256 * (i % 2 + 1))   # equal sort keys: id breaks ties
            await s.image(qcow2_image, name=f"img-{i % 2}")
            await stubs["keypairs"].CreateKeypair(K.CreateKeypairRequest(name=f"k-{i}"),
                                                  metadata=user())
            network = (await stubs["networks"].CreateNetwork(
                N.CreateNetworkRequest(name=f"n-{i % 2}"), metadata=user())).network
            await stubs["networks"].CreateSubnet(N.CreateSubnetRequest(
                network_id=network.id, name="s", cidr=f"10.9.{i}.0/24"), metadata=user())
            await stubs["networks"].CreatePort(N.CreatePortRequest(network_id=network.id),
                                               metadata=user())
            await stubs["security_groups"].CreateSecurityGroup(
                SG.CreateSecurityGroupRequest(name=f"sg-{i}"), metadata=user())
            await stubs["server_groups"].CreateServerGroup(G.CreateServerGroupRequest(
                name=f"g-{i % 2}", policy=G.ServerGroup.POLICY_AFFINITY), metadata=user())
            await stubs["aggregates"].CreateAggregate(AG.CreateAggregateRequest(name=f"a-{i}"),
                                                      metadata=ADMIN)
        stubs["refs"] = await _fill_more(dbs, stubs)
        yield stubs


async def _fill_more(dbs, stubs) -> dict:
    """Zones, migrations, flavor access, volume types, datastores and the
    database lists; returns the ids the per-parent lists need."""
    s, api = dbs.stack, dbs.stack.api
    hosts = [h.host for h in (await stubs["hypervisors"].ListHypervisors(
        H.ListHypervisorsRequest(), metadata=ADMIN)).hypervisors]
    aggregates = (await stubs["aggregates"].ListAggregates(AG.ListAggregatesRequest(),
                                                           metadata=ADMIN)).aggregates
    for agg, host in zip(aggregates, hosts):
        await stubs["aggregates"].UpdateAggregate(AG.UpdateAggregateRequest(
            id=agg.id, availability_zone=f"z-{agg.name}"), metadata=ADMIN)
        await stubs["aggregates"].AddAggregateHost(AG.AddAggregateHostRequest(
            id=agg.id, host=host), metadata=ADMIN)
    # A server moved COUNT times: COUNT migrations of its own.
    server = (await api.CreateServer(C.CreateServerRequest(
        name="mover", image_ref="cirros", flavor_ref="m1.tiny", networks_mode="none"),
        metadata=user())).servers[0]
    await s.wait_settled(server.id)
    for _ in range(COUNT):
        await api.MigrateServer(C.MigrateServerRequest(id=server.id), metadata=ADMIN)
        await s.wait_for(server.id, lambda v: v.vm_state == C.VM_STATE_RESIZED and not v.task_state)
        await api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=user())
        await s.wait_settled(server.id)
    private = (await api.CreateFlavor(C.CreateFlavorRequest(flavor=C.Flavor(
        name="private", vcpus=1, ram_mb=256, disk_gb=1, is_public=False)), metadata=ADMIN)).flavor
    huge = await s.flavor("huge", disk_gb=100000)   # no host holds it
    for i in range(COUNT):
        await api.AddFlavorAccess(C.AddFlavorAccessRequest(
            flavor_ref=private.id, project_id=f"p-{i}"), metadata=ADMIN)
        await s.volumes.CreateVolumeType(V.CreateVolumeTypeRequest(name=f"t-{i}", backend="file"),
                                         metadata=ADMIN)
        await dbs.datastores.CreateDatastore(S.CreateDatastoreRequest(datastore=S.Datastore(
            name=f"ds-{i}")), metadata=ADMIN)
    # One real instance with COUNT databases, users and backups; the others
    # fail at once (no host holds their flavor) but are listed all the same.
    names = [f"app{i}" for i in range(COUNT)]
    db = (await dbs.db.CreateInstance(D.CreateInstanceRequest(
        name="db", flavor_ref="m1.tiny", datastore=D.DatastoreRef(type="postgresql"),
        volume=D.VolumeSpec(size_gb=1), databases=[D.DatabaseSpec(name=n) for n in names],
        users=[D.UserSpec(name=n, password="s3cret-Pass", databases=[n]) for n in names]),
        metadata=DBUSER)).instance
    for i in range(COUNT - 1):
        await dbs.db.CreateInstance(D.CreateInstanceRequest(
            name=f"db-x{i}", flavor_ref=huge.id, datastore=D.DatastoreRef(type="postgresql"),
            volume=D.VolumeSpec(size_gb=1)), metadata=DBUSER)
    assert (await dbs.wait_settled(db.id, timeout=120)).status == D.INSTANCE_STATUS_ACTIVE
    for i in range(COUNT):
        backup = (await dbs.backups.CreateBackup(B.CreateBackupRequest(
            instance_id=db.id, name=f"b-{i}"), metadata=DBUSER)).backup
        done = await dbs.wait_backup_settled(backup.id)
        assert done.status == B.BACKUP_STATUS_COMPLETED, done.fail_reason
    return {"server": server.id, "private_flavor": private.id, "db_instance": db.id}


def _call(stubs, which):
    stub, rpc, request, answer, caller, *refs = LISTS[which]
    method = getattr(stubs[stub], rpc)
    fixed = {field: stubs["refs"][ref] for field, ref in (refs[0] if refs else {}).items()}
    return method, lambda **kw: request(**fixed, **kw), answer, caller


@pytest.mark.parametrize("which", sorted(LISTS))
async def test_small_pages_walk_everything_once(filled, which):
    method, request, answer, caller = _call(filled, which)
    whole = getattr(await method(request(), metadata=caller), answer)
    assert len(whole) >= COUNT
    walked, token, pages = [], "", 0
    while True:
        resp = await method(request(page_size=2, page_token=token), metadata=caller)
        page = getattr(resp, answer)
        assert len(page) <= 2
        walked += page
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    assert [_id(i) for i in walked] == [_id(i) for i in whole]
    assert pages == -(-len(whole) // 2)


@pytest.mark.parametrize("which", sorted(LISTS))
async def test_tokens_that_do_not_fit_are_refused(filled, which):
    method, request, answer, caller = _call(filled, which)
    await expect(method(request(page_token="not-a-token"), metadata=caller),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    await expect(method(request(page_size=-1), metadata=caller),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_size")
    # A token another list issued (to the same caller) is not one of this list's.
    other, *_ = _call(filled, "keypairs" if which != "keypairs" else "security_groups")
    other_request = LISTS["keypairs" if which != "keypairs" else "security_groups"][2]
    foreign = (await other(other_request(page_size=1), metadata=user())).next_page_token
    assert foreign
    await expect(method(request(page_token=foreign), metadata=caller),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")


async def test_a_token_is_bound_to_its_caller(filled):
    keypairs = filled["keypairs"]
    first = await keypairs.ListKeypairs(K.ListKeypairsRequest(page_size=1), metadata=user())
    assert first.next_page_token
    await expect(keypairs.ListKeypairs(K.ListKeypairsRequest(page_token=first.next_page_token),
                                       metadata=user("bob", "demo")),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")
