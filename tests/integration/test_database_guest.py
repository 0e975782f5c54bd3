"""What the guest agent does for real: databases and users checked by
connecting, root, deletes in BUILD, failures that must show (a datastore
that cannot start, a killed datastore, a killed guest agent) and a task
manager restarted in the middle of a create."""

import asyncio
import os
import signal

import grpc
import pytest

from dbstack import CLIENTS, datastore_processes
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import records_pb2 as R
from stack import ADMIN, expect
from test_database_flow import ALICE, create_request


async def active(dbstack, datastore="postgresql", **kw):
    created = (await dbstack.db.CreateInstance(create_request(datastore, **kw), metadata=ALICE)).instance
    done = await dbstack.wait_settled(created.id)
    assert done.status == D.INSTANCE_STATUS_ACTIVE, done.fault
    return done


async def delete_and_check_clean(dbstack, instance_id):
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=instance_id), metadata=ALICE)
    assert await dbstack.wait_for(instance_id, lambda i: i is None) is None
    assert os.listdir(dbstack.guest_dir) == []
    assert datastore_processes(dbstack.guest_dir) == []
    servers = await dbstack.api.ListServers(C.ListServersRequest(all_projects=True), metadata=ADMIN)
    assert list(servers.servers) == []
    usage = await dbstack.database.store.get("db/usages/demo", R.DbUsage)
    assert usage.msg.instances == 0 and usage.msg.volumes == 0


@pytest.mark.parametrize("datastore", ["postgresql", "mariadb"])
async def test_databases_users_and_root_by_connecting(dbstack, datastore):
    inst = await active(dbstack, datastore)
    db, client = dbstack.db, CLIENTS[datastore]
    await db.CreateDatabase(D.CreateDatabaseRequest(instance_id=inst.id, databases=[
        D.DatabaseSpec(name="extra")]), metadata=ALICE)
    names = [d.name for d in (await db.ListDatabases(D.ListDatabasesRequest(instance_id=inst.id),
                                                     metadata=ALICE)).databases]
    assert names == ["app", "extra"]
    await db.CreateUser(D.CreateUserRequest(instance_id=inst.id, users=[
        D.UserSpec(name="bob", password="bobs-password", databases=["extra"])]), metadata=ALICE)
    assert client(inst, "bob", "bobs-password", "extra").returncode == 0
    users = {u.name: list(u.databases) for u in (await db.ListUsers(
        D.ListUsersRequest(instance_id=inst.id), metadata=ALICE)).users}
    assert users == {"app": ["app"], "bob": ["extra"]}
    for u in (await db.ListUsers(D.ListUsersRequest(instance_id=inst.id), metadata=ALICE)).users:
        assert u.password == ""

    await db.RevokeAccess(D.RevokeAccessRequest(instance_id=inst.id, user="bob", database="extra"),
                          metadata=ALICE)
    assert client(inst, "bob", "bobs-password", "extra").returncode != 0
    await db.GrantAccess(D.GrantAccessRequest(instance_id=inst.id, user="bob", databases=["extra"]),
                         metadata=ALICE)
    made = client(inst, "bob", "bobs-password", "extra", "create table t (x int); select 1")
    assert made.returncode == 0, made.stderr
    await db.DeleteUser(D.DeleteUserRequest(instance_id=inst.id, name="bob"), metadata=ALICE)
    assert client(inst, "bob", "bobs-password", "extra").returncode != 0
    await expect(db.DeleteUser(D.DeleteUserRequest(instance_id=inst.id, name="bob"), metadata=ALICE),
                 grpc.StatusCode.NOT_FOUND, "datastore object")
    await db.DeleteDatabase(D.DeleteDatabaseRequest(instance_id=inst.id, name="extra"), metadata=ALICE)
    names = [d.name for d in (await db.ListDatabases(D.ListDatabasesRequest(instance_id=inst.id),
                                                     metadata=ALICE)).databases]
    assert names == ["app"]
    await expect(db.CreateUser(D.CreateUserRequest(instance_id=inst.id, users=[
        D.UserSpec(name="x", password="short")]), metadata=ALICE),
        grpc.StatusCode.INVALID_ARGUMENT, "users[0].password")

    assert not (await db.IsRootEnabled(D.IsRootEnabledRequest(instance_id=inst.id),
                                       metadata=ALICE)).root_enabled
    root = await db.EnableRoot(D.EnableRootRequest(instance_id=inst.id), metadata=ALICE)
    assert len(root.password) >= 16
    system_db = "postgres" if datastore == "postgresql" else ""
    assert client(inst, root.name, root.password, system_db).returncode == 0
    assert (await db.IsRootEnabled(D.IsRootEnabledRequest(instance_id=inst.id),
                                   metadata=ALICE)).root_enabled
    await db.RestartInstance(D.RestartInstanceRequest(id=inst.id), metadata=ALICE)
    assert client(inst, "app", "s3cret-Pass", "app").returncode == 0
    await delete_and_check_clean(dbstack, inst.id)


async def test_delete_while_building_cleans_everything(dbstack):
    created = (await dbstack.db.CreateInstance(create_request("mariadb"), metadata=ALICE)).instance
    await dbstack.wait_for(created.id, lambda i: i is not None and i.server_id)
    deleting = (await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id),
                                                metadata=ALICE)).instance
    assert deleting.status == D.INSTANCE_STATUS_DELETING
    await delete_and_check_clean(dbstack, created.id)


async def test_delete_right_after_create(dbstack):
    created = (await dbstack.db.CreateInstance(create_request(), metadata=ALICE)).instance
    await delete_and_check_clean(dbstack, created.id)


async def test_datastore_that_cannot_start_is_an_error_with_a_fault(dbstack, monkeypatch):
    monkeypatch.setenv("NIMBUS_POSTGRES_BIN", "/nonexistent/bin")   # inherited by the guest
    created = (await dbstack.db.CreateInstance(create_request(), metadata=ALICE)).instance
    done = await dbstack.wait_settled(created.id)
    assert done.status == D.INSTANCE_STATUS_ERROR
    assert done.task_status == D.TASK_STATUS_BUILDING_ERROR_GUEST
    assert "initdb" in done.fault.message
    await delete_and_check_clean(dbstack, created.id)


def guest_pid(dbstack, inst) -> int:
    rec = dbstack.database.instances.items[f"db/instances/{inst.id}"].msg
    with open(os.path.join(dbstack.guest_dir, rec.guest_id, "agent.pid")) as f:
        return int(f.read())


def datastore_pid(dbstack, inst) -> int:
    agent = guest_pid(dbstack, inst)
    return next(p for p in datastore_processes(dbstack.guest_dir) if p != agent and
                open(f"/proc/{p}/stat").read().split(") ")[1].split()[1] == str(agent))


@pytest.mark.parametrize("sig,expected", [(signal.SIGKILL, D.SERVICE_STATUS_CRASHED),
                                          (signal.SIGTERM, D.SERVICE_STATUS_SHUTDOWN)])
async def test_a_dead_datastore_shows_within_seconds(dbstack, sig, expected):
    inst = await active(dbstack)
    os.kill(datastore_pid(dbstack, inst), sig)
    down = await dbstack.wait_for(inst.id, lambda i: i.service_status == expected, timeout=10)
    assert down.status == D.INSTANCE_STATUS_SHUTDOWN and down.fault.message
    await delete_and_check_clean(dbstack, inst.id)


async def test_a_killed_guest_agent_is_failed_not_healthy(dbstack):
    inst = await active(dbstack, "mariadb")
    os.kill(guest_pid(dbstack, inst), signal.SIGKILL)
    failed = await dbstack.wait_for(inst.id, lambda i: i.service_status ==
                                    D.SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT, timeout=15)
    assert failed.status == D.INSTANCE_STATUS_FAILED
    await expect(dbstack.db.ListUsers(D.ListUsersRequest(instance_id=inst.id), metadata=ALICE),
                 grpc.StatusCode.FAILED_PRECONDITION)
    await delete_and_check_clean(dbstack, inst.id)   # the orphaned mariadbd goes too


async def test_task_manager_restarted_mid_create_still_finishes(dbstack):
    created = (await dbstack.db.CreateInstance(create_request(), metadata=ALICE)).instance
    await dbstack.wait_for(created.id, lambda i: i is not None and i.server_id)
    await dbstack.database.stop()   # the leader goes away mid-build
    await dbstack.start_database()
    done = await dbstack.wait_settled(created.id)
    assert done.status == D.INSTANCE_STATUS_ACTIVE, done.fault
    assert CLIENTS["postgresql"](done, "app", "s3cret-Pass", "app").returncode == 0
    # Restarted again with the guest ACTIVE: it reconnects with its rotated credential.
    await dbstack.database.stop()
    await dbstack.start_database()
    for _ in range(100):
        try:
            users = await dbstack.db.ListUsers(D.ListUsersRequest(instance_id=created.id), metadata=ALICE)
            break
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            await asyncio.sleep(0.1)
    assert [u.name for u in users.users] == ["app"]
    await delete_and_check_clean(dbstack, created.id)


async def test_guests_stopped_with_the_service_run_again_when_it_starts(dbstack):
    """`make run` stopped, then started again: it stops every guest with
    DatabaseService (simulation.stop_all), and DatabaseService, started with
    resume_guests_state_on_host_boot, starts them again; the datastore comes
    back with its data and its users."""
    from nimbus.services.database.simulation import stop_all
    created = (await dbstack.db.CreateInstance(create_request(), metadata=ALICE)).instance
    done = await dbstack.wait_settled(created.id)
    assert done.status == D.INSTANCE_STATUS_ACTIVE, done.fault
    await dbstack.database.stop()
    stop_all(dbstack.guest_dir)
    assert datastore_processes(dbstack.guest_dir) == []
    dbstack.stack.cfg.resume_guests_state_on_host_boot = True
    try:
        await dbstack.start_database()
    finally:
        dbstack.stack.cfg.resume_guests_state_on_host_boot = False
    # (The record may still say HEALTHY from before: the heartbeat expiry is
    # 3 s. The datastore answering is what counts.)
    async with asyncio.timeout(60):
        while (answer := await asyncio.to_thread(
                CLIENTS["postgresql"], done, "app", "s3cret-Pass", "app")).returncode:
            await asyncio.sleep(0.3)
    assert datastore_processes(dbstack.guest_dir)
    back = await dbstack.wait_for(created.id, lambda i: i.service_status == D.SERVICE_STATUS_HEALTHY)
    assert back.status == D.INSTANCE_STATUS_ACTIVE and (back.host, back.port) == (done.host, done.port)
    await delete_and_check_clean(dbstack, created.id)


async def test_build_that_outlives_usage_timeout_is_a_visible_error(dbstack):
    await dbstack.database.stop()
    dbstack.usage_timeout = 0.5
    await dbstack.start_database()
    created = (await dbstack.db.CreateInstance(create_request(), metadata=ALICE)).instance
    done = await dbstack.wait_settled(created.id)
    assert done.status == D.INSTANCE_STATUS_ERROR
    assert done.task_status in (D.TASK_STATUS_BUILDING_ERROR_SERVER,
                                D.TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA)
    assert "usage_timeout" in done.fault.message
    await asyncio.sleep(0)
    await delete_and_check_clean(dbstack, created.id)


async def test_locality_makes_a_server_group_and_the_port_a_security_group(dbstack):
    from nimbus.compute.v1 import security_groups_pb2 as SG
    from nimbus.compute.v1 import security_groups_pb2_grpc, server_groups_pb2 as SVG
    from nimbus.compute.v1 import server_groups_pb2_grpc
    inst = await active(dbstack, "mariadb", locality="anti-affinity")
    assert inst.server_group_id and inst.security_group_id
    md = dbstack.database.compute.metadata   # the service's view: the groups are its own
    groups = server_groups_pb2_grpc.ServerGroupServiceStub(dbstack.stack.channel)
    group = (await groups.GetServerGroup(SVG.GetServerGroupRequest(id=inst.server_group_id),
                                         metadata=md)).server_group
    assert group.policy == SVG.ServerGroup.POLICY_ANTI_AFFINITY and list(group.members) == [inst.server_id]
    sgs = security_groups_pb2_grpc.SecurityGroupServiceStub(dbstack.stack.channel)
    sg = (await sgs.GetSecurityGroup(SG.GetSecurityGroupRequest(id=inst.security_group_id),
                                     metadata=md)).security_group
    assert any(r.port_range_min == 3306 and r.direction == SG.SecurityGroupRule.DIRECTION_INGRESS
               for r in sg.rules)
    await delete_and_check_clean(dbstack, inst.id)
    await expect(groups.GetServerGroup(SVG.GetServerGroupRequest(id=inst.server_group_id), metadata=md),
                 grpc.StatusCode.NOT_FOUND, "server_group")
    await expect(sgs.GetSecurityGroup(SG.GetSecurityGroupRequest(id=inst.security_group_id), metadata=md),
                 grpc.StatusCode.NOT_FOUND, "security_group")
