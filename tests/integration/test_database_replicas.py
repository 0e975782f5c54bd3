"""Replicas with real PostgreSQL (physical streaming replication) and
MariaDB (GTID replication): a row written on the source shows on every
replica, a replica refuses writes, the source cannot be deleted while it
has replicas, DetachReplica promotes one to a writable instance."""

import asyncio

import grpc
import pytest

from nimbus.database.v1 import database_pb2 as D
from stack import expect
from test_database_backups import ROWS, delete_instance, sql
from test_database_flow import ALICE, create_request
from test_database_guest import active

FP, INV = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT


async def eventually_rows(inst, expected, timeout=30.0):
    """Replication is asynchronous: read until the rows arrive (or time out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await asyncio.to_thread(sql, inst, "select id from t order by id")
        if got == expected or loop.time() > deadline:
            return got
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("datastore,count", [("postgresql", 2), ("mariadb", 1)])
async def test_replicas_follow_the_source_refuse_writes_and_detach(dbstack, datastore, count):
    source = await active(dbstack, datastore)
    sql(source, ROWS)
    made = await dbstack.db.CreateInstance(D.CreateInstanceRequest(
        name="r", replica_of=source.id, replica_count=count), metadata=ALICE)
    assert [i.name for i in made.instances] == (["r-1", "r-2"] if count == 2 else ["r"])
    replicas = []
    for inst in made.instances:
        done = await dbstack.wait_settled(inst.id)
        assert done.status == D.INSTANCE_STATUS_ACTIVE, done.fault
        assert done.replica_of == source.id and done.flavor_ref == source.flavor_ref
        replicas.append(done)

    sql(source, "insert into t values (3, 'three')")
    for replica in replicas:
        assert await eventually_rows(replica, ["1", "2", "3"]) == ["1", "2", "3"]
        refused = dbstack_client(replica, "insert into t values (4, 'four')")
        assert refused.returncode != 0 and "read" in refused.stderr.lower(), refused.stderr

    await expect(dbstack.db.CreateInstance(D.CreateInstanceRequest(
        name="rr", replica_of=replicas[0].id), metadata=ALICE), INV, "replica_of")
    await expect(dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=source.id), metadata=ALICE), FP)

    detached = (await dbstack.db.DetachReplica(D.DetachReplicaRequest(id=replicas[0].id),
                                               metadata=ALICE)).instance
    assert detached.replica_of == ""
    sql(detached, "insert into t values (10, 'mine now')")
    assert sql(detached, "select id from t order by id") == ["1", "2", "3", "10"]
    await expect(dbstack.db.DetachReplica(D.DetachReplicaRequest(id=detached.id), metadata=ALICE), FP)
    for replica in replicas:
        await delete_instance(dbstack, replica.id)
    await delete_instance(dbstack, source.id)


def dbstack_client(inst, query):
    from dbstack import CLIENTS
    return CLIENTS[inst.datastore.type](inst, "app", "s3cret-Pass", "app", query)


async def test_replica_request_refusals(dbstack):
    source_building = (await dbstack.db.CreateInstance(create_request(), metadata=ALICE)).instance
    cases = [
        (dict(replica_count=2), INV, "replica_count"),
        (dict(replica_of="x", replica_count=4), INV, "replica_count"),
        (dict(replica_of=source_building.id, flavor_ref="m1.tiny"), INV, "flavor_ref"),
        (dict(replica_of=source_building.id, volume=D.VolumeSpec(size_gb=1)), INV, "volume.size_gb"),
        (dict(replica_of=source_building.id, databases=[D.DatabaseSpec(name="a")]), INV, "databases"),
        (dict(replica_of=source_building.id, users=[D.UserSpec(name="a", password="p4ssword-x")]),
         INV, "users"),
        (dict(replica_of="no-such-instance"), grpc.StatusCode.NOT_FOUND, "database instance"),
        (dict(replica_of=source_building.id), FP, ""),   # the source is not ACTIVE (yet)
    ]
    for fields, code, field in cases:
        await expect(dbstack.db.CreateInstance(D.CreateInstanceRequest(name="r", **fields),
                                               metadata=ALICE), code, field)
    await delete_instance(dbstack, source_building.id)
