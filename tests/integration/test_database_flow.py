"""Database instances end to end: real etcd, gRPC, the libvirt test driver,
real PostgreSQL and MariaDB processes that a real client connects to."""

import os

import grpc
import pytest

from dbstack import CLIENTS, datastore_processes
from nimbus.database.v1 import database_pb2 as D
from stack import user

ALICE = user("alice", "demo")


def create_request(datastore: "str | D.DatastoreRef" = "postgresql", **kw):
    if isinstance(datastore, str):
        datastore = D.DatastoreRef(type=datastore)
    args = dict(name="db1", flavor_ref="m1.tiny", datastore=datastore,
                volume=D.VolumeSpec(size_gb=1), databases=[D.DatabaseSpec(name="app")],
                users=[D.UserSpec(name="app", password="s3cret-Pass", databases=["app"])])
    args.update(kw)
    return D.CreateInstanceRequest(**args)


@pytest.mark.parametrize("datastore", ["postgresql", "mariadb"])
async def test_create_reaches_active_and_a_client_connects(dbstack, datastore):
    created = (await dbstack.db.CreateInstance(create_request(datastore), metadata=ALICE)).instance
    assert created.status == D.INSTANCE_STATUS_BUILD
    active = await dbstack.wait_settled(created.id)
    assert active.status == D.INSTANCE_STATUS_ACTIVE, active.fault
    assert active.service_status == D.SERVICE_STATUS_HEALTHY
    assert active.host == "127.0.0.1" and active.port > 0 and active.server_id
    client = CLIENTS[datastore]
    ok = client(active, "app", "s3cret-Pass", "app")
    assert ok.returncode == 0 and ok.stdout.strip() == "1", ok.stderr
    bad = client(active, "app", "wrong-password", "app")
    assert bad.returncode != 0
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id), metadata=ALICE)
    assert await dbstack.wait_for(created.id, lambda i: i is None) is None
    assert os.listdir(dbstack.guest_dir) == []   # no config drive, no data directory
    assert not datastore_processes(dbstack.guest_dir)


async def test_passwords_reach_neither_etcd_nor_logs_nor_answers(dbstack):
    secret = "s3cret-Pass"
    created = (await dbstack.db.CreateInstance(create_request("mariadb"), metadata=ALICE)).instance
    active = await dbstack.wait_settled(created.id)
    assert active.status == D.INSTANCE_STATUS_ACTIVE, active.fault
    root = await dbstack.db.EnableRoot(D.EnableRootRequest(instance_id=created.id), metadata=ALICE)
    store = dbstack.database.store
    values = [kv.value for kv in (await store.list_raw(""))[0]]
    assert values and not [v for v in values if secret.encode() in v or root.password.encode() in v]
    rec = dbstack.database.instances.items[f"db/instances/{created.id}"].msg
    for name in ("agent.log", "datastore/server.log"):
        with open(os.path.join(dbstack.guest_dir, rec.guest_id, name), errors="replace") as f:
            text = f.read()
        assert secret not in text and root.password not in text
    got = await dbstack.db.GetInstance(D.GetInstanceRequest(id=created.id), metadata=ALICE)
    assert secret not in str(got) and root.password not in str(got)
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id), metadata=ALICE)
    assert await dbstack.wait_for(created.id, lambda i: i is None) is None

