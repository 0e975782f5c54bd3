"""DatabaseService's checks and scoping: a table of bad requests with exact
codes (nothing left behind), other projects, guest credentials."""

import asyncio

import grpc
import pytest

from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import datastores_pb2 as S
from nimbus.database.v1 import guest_pb2 as G
from nimbus.database.v1 import guest_pb2_grpc
from nimbus.database.v1 import records_pb2 as R
from nimbus.rpc.server import channel
from stack import ADMIN, expect, user
from test_database_flow import ALICE, create_request

INV, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
U = D.UserSpec

BAD = [
    (dict(name=""), INV, "name"),
    (dict(flavor_ref=""), INV, "flavor_ref"),
    (dict(flavor_ref="m1.nope"), NF, "flavor"),
    (dict(datastore=D.DatastoreRef(type="oracle")), NF, "datastore"),
    (dict(datastore=D.DatastoreRef(type="postgresql", version="9")), NF, "datastore_version"),
    (dict(datastore=D.DatastoreRef(type="postgresql", version="14")), INV, "datastore.version"),
    (dict(volume=D.VolumeSpec(size_gb=0)), INV, "volume.size_gb"),
    (dict(volume=D.VolumeSpec(size_gb=11)), INV, "volume.size_gb"),
    (dict(volume=D.VolumeSpec(size_gb=-1)), INV, "volume.size_gb"),
    (dict(databases=[D.DatabaseSpec(name="bad name!")], users=[]), INV, "databases[0].name"),
    (dict(databases=[D.DatabaseSpec(name="a"), D.DatabaseSpec(name="a")], users=[]), INV,
     "databases[1].name"),
    (dict(databases=[D.DatabaseSpec(name="template1")], users=[]), INV, "databases[0].name"),
    (dict(databases=[D.DatabaseSpec(name="nimbus_spare")], users=[]), INV, "databases[0].name"),
    (dict(users=[U(name="app", password="short", databases=["app"])]), INV, "users[0].password"),
    (dict(users=[U(name="app", password="long-enough"), U(name="app", password="long-enough")]),
     INV, "users[1].name"),
    (dict(users=[U(name="postgres", password="long-enough")]), INV, "users[0].name"),
    (dict(users=[U(name="app", password="long-enough", databases=["other"])]), INV,
     "users[0].databases[0]"),
    (dict(users=[U(name="app", password="long-enough", host="%")]), INV, "users[0].name"),
    (dict(locality="near"), INV, "locality"),
    (dict(replica_of="db0"), INV, "flavor_ref"),   # a replica takes its flavor from the source
    (dict(replica_count=2), INV, "replica_count"),
    (dict(restore_point=D.RestorePoint(backup_ref="no-such-backup")), NF, "backup"),
    (dict(restore_point=D.RestorePoint()), INV, "restore_point.backup_ref"),
    (dict(availability_zone="nowhere"), NF, "availability_zone"),
    (dict(nics=["no-such-network"]), NF, "network"),
    (dict(nics=[""]), INV, "nics[0]"),
    (dict(flavor_ref="x" * 300), NF, "flavor"),
]


@pytest.fixture
async def api(dbstack):
    # An inactive version, for the table.
    await dbstack.datastores.PutVersion(S.PutVersionRequest(datastore="postgresql", version=S.DatastoreVersion(
        name="14", manager="postgresql", image="cirros", active=False)), metadata=ADMIN)
    return dbstack


@pytest.mark.parametrize("fields,code,field", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
async def test_bad_requests_are_refused_and_leave_nothing(api, fields, code, field):
    fields = dict(fields)
    request = create_request(fields.pop("datastore", "postgresql"), **fields)
    await expect(api.db.CreateInstance(request, metadata=ALICE), code, field)
    listed = await api.db.ListInstances(D.ListInstancesRequest(all_projects=True), metadata=ADMIN)
    assert list(listed.instances) == []


async def test_mariadb_rules_differ(api):
    await expect(api.db.CreateInstance(create_request(
        "mariadb", users=[U(name="root", password="long-enough")], databases=[]), metadata=ALICE),
        INV, "users[0].name")


async def test_calls_need_credentials_and_admin_for_datastores(api):
    await expect(api.db.ListInstances(D.ListInstancesRequest()), grpc.StatusCode.UNAUTHENTICATED)
    await expect(api.datastores.CreateDatastore(S.CreateDatastoreRequest(datastore=S.Datastore(
        name="x")), metadata=ALICE), grpc.StatusCode.PERMISSION_DENIED)
    await expect(api.db.ListInstances(D.ListInstancesRequest(all_projects=True), metadata=ALICE),
                 grpc.StatusCode.PERMISSION_DENIED)


async def test_quota_for_database_instances(api):
    from nimbus.database.v1 import records_pb2 as R
    from nimbus.store import keys
    store = api.database.store
    await store.txn([], [store.put(keys.db_quota("demo"), R.DbQuota(volumes=1))])
    await expect(api.db.CreateInstance(create_request(volume=D.VolumeSpec(size_gb=2)), metadata=ALICE),
                 grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_another_project_cannot_see_or_touch_it(api):
    created = (await api.db.CreateInstance(create_request(), metadata=ALICE)).instance
    bob = user("bob", "other")
    await expect(api.db.GetInstance(D.GetInstanceRequest(id=created.id), metadata=bob), NF,
                 "database instance")
    await expect(api.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id), metadata=bob), NF,
                 "database instance")
    assert list((await api.db.ListInstances(D.ListInstancesRequest(), metadata=bob)).instances) == []
    await api.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id), metadata=ALICE)
    assert await api.wait_for(created.id, lambda i: i is None) is None


async def test_a_guest_credential_speaks_only_for_its_guest(api):
    created = (await api.db.CreateInstance(create_request(), metadata=ALICE)).instance
    active = await api.wait_settled(created.id)
    assert active.status == D.INSTANCE_STATUS_ACTIVE, active.fault
    rec = api.database.instances.items[f"db/instances/{created.id}"].msg
    import hashlib
    import json
    import os
    base = os.path.join(api.guest_dir, rec.guest_id)
    with open(os.path.join(base, "config-drive", "openstack", "content", "0000")) as f:
        initial = json.load(f)["credential"]
    for _ in range(100):   # the rotation is confirmed by the guest, then written
        guest = (await api.database.store.get(f"guests/{rec.guest_id}", R.GuestRecord)).msg
        if guest.rotated:
            break
        await asyncio.sleep(0.05)
    with open(os.path.join(base, "datastore", "credential")) as f:
        secret = f.read()   # what the guest was given on its first connection
    assert os.stat(os.path.join(base, "datastore", "credential")).st_mode & 0o077 == 0
    assert guest.rotated and guest.credential_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret != initial

    async def connect(token, guest_id):
        async def requests():   # as a guest does: hello, then the stream stays open
            yield G.ConnectRequest(hello=G.Hello(guest_id=guest_id))
            await asyncio.Event().wait()
        async with channel(api.address) as ch:
            call = guest_pb2_grpc.GuestAgentServiceStub(ch).Connect(
                requests(), metadata=(("authorization", f"Bearer {token}"),))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in call:
                    pass
            return err.value.code()
    assert await connect(f"guest.{rec.guest_id}.wrong", rec.guest_id) == grpc.StatusCode.UNAUTHENTICATED
    # The config drive's credential (also in the server's personality file) is spent.
    assert await connect(f"guest.{rec.guest_id}.{initial}", rec.guest_id) == grpc.StatusCode.UNAUTHENTICATED
    assert await connect(f"guest.{rec.guest_id}.{secret}", "another-guest") == \
        grpc.StatusCode.PERMISSION_DENIED
    assert await connect("alice:demo", rec.guest_id) == grpc.StatusCode.PERMISSION_DENIED
    # A guest cannot use the user API with its credential.
    await expect(api.db.ListInstances(D.ListInstancesRequest(), metadata=(
        ("authorization", f"Bearer guest.{rec.guest_id}.{secret}"),)), grpc.StatusCode.PERMISSION_DENIED)
    await api.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id), metadata=ALICE)
    assert await api.wait_for(created.id, lambda i: i is None) is None
