"""Backups and restore with real PostgreSQL and MariaDB: the guest dumps
with the datastore's own tool and streams to DatabaseService, which stores
the bytes; a new instance restored from the backup shows the rows written
before it (not those after), even once the source is deleted; a guest
killed mid-backup leaves it FAILED; the restore checks refuse with a code."""

import hashlib
import json
import os

import grpc
import pytest

from dbstack import CLIENTS
from nimbus.database.v1 import backups_pb2 as B
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database.backups import GIB, too_large
from nimbus.store import keys
from nimbus.store.store import Store
from stack import ADMIN, expect, user
from test_database_flow import ALICE, create_request
from test_database_guest import active

BOB = user("bob", "other")
FP, INV, NF = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT,
               grpc.StatusCode.NOT_FOUND)
ROWS = "create table t (id int primary key, v varchar(20)); insert into t values (1, 'one'), (2, 'two')"


def sql(inst, query, password="s3cret-Pass"):
    out = CLIENTS[inst.datastore.type](inst, "app", password, "app", query)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


async def completed_backup(dbstack, inst, name="b1") -> B.Backup:
    new = (await dbstack.backups.CreateBackup(B.CreateBackupRequest(
        instance_id=inst.id, name=name), metadata=ALICE)).backup
    assert new.status == B.BACKUP_STATUS_NEW
    done = await dbstack.wait_backup_settled(new.id)
    assert done.status == B.BACKUP_STATUS_COMPLETED, done.fail_reason
    return done


async def usage(dbstack) -> R.DbUsage:
    return (await dbstack.database.store.get(keys.db_usage("demo"), R.DbUsage)).msg


async def delete_instance(dbstack, instance_id):
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=instance_id), metadata=ALICE)
    assert await dbstack.wait_for(instance_id, lambda i: i is None) is None


@pytest.mark.parametrize("datastore,tool", [("postgresql", "pg_dumpall"), ("mariadb", "mariadb-dump")])
async def test_backup_then_restore_into_a_new_instance_after_the_source_is_gone(dbstack, datastore, tool):
    source = await active(dbstack, datastore)
    sql(source, ROWS)
    backup = await completed_backup(dbstack, source)
    assert backup.tool == tool and backup.size_bytes > 0 and backup.datastore.type == datastore
    with open(os.path.join(dbstack.backup_dir, backup.id), "rb") as f:
        stored = f.read()
    assert len(stored) == backup.size_bytes
    assert hashlib.sha256(stored).hexdigest() == backup.checksum_sha256
    sql(source, "insert into t values (3, 'after the backup')")
    assert (await usage(dbstack)).backups == 1

    by_instance = await dbstack.backups.ListBackups(B.ListBackupsRequest(instance_id=source.id),
                                                    metadata=ALICE)
    assert [b.id for b in by_instance.backups] == [backup.id]
    other = "mariadb" if datastore == "postgresql" else "postgresql"
    for ds, expected in ((datastore, [backup.id]), (other, [])):
        listed = await dbstack.backups.ListBackups(B.ListBackupsRequest(datastore=ds), metadata=ALICE)
        assert [b.id for b in listed.backups] == expected
    assert list((await dbstack.backups.ListBackups(B.ListBackupsRequest(), metadata=BOB)).backups) == []

    await delete_instance(dbstack, source.id)   # the backup outlives its instance
    restored = await active(dbstack, datastore, name="db2", restore_point=D.RestorePoint(
        backup_ref=backup.id), users=[D.UserSpec(name="app", password="n3w-Passw0rd", databases=["app"])])
    assert sql(restored, "select id from t order by id", "n3w-Passw0rd") == ["1", "2"]
    await delete_instance(dbstack, restored.id)

    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=backup.id), metadata=ALICE)
    assert await dbstack.wait_backup(backup.id, lambda b: b is None) is None
    assert os.listdir(dbstack.backup_dir) == []
    assert (await usage(dbstack)).backups == 0


async def test_a_guest_killed_mid_backup_leaves_it_failed_not_building(dbstack, monkeypatch):
    # A real crash: the guest agent process exits (os._exit) after its first chunk.
    monkeypatch.setenv("NIMBUS_CRASH_AT", "guestagent.backup.streaming")   # inherited by the guest
    inst = await active(dbstack)
    new = (await dbstack.backups.CreateBackup(B.CreateBackupRequest(instance_id=inst.id, name="b"),
                                              metadata=ALICE)).backup
    failed = await dbstack.wait_backup_settled(new.id)
    assert failed.status == B.BACKUP_STATUS_FAILED and failed.fail_reason
    assert failed.size_bytes == 0 and not failed.checksum_sha256
    assert os.listdir(dbstack.backup_dir) == []   # no partial bytes kept
    err = await expect(dbstack.db.CreateInstance(create_request(name="db2", restore_point=D.RestorePoint(
        backup_ref=new.id)), metadata=ALICE), FP)
    assert "FAILED" in err.details()
    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=new.id), metadata=ALICE)
    assert (await usage(dbstack)).backups == 0
    await delete_instance(dbstack, inst.id)


async def test_a_backup_left_building_by_a_restarted_service_ends_failed(dbstack):
    inst = await active(dbstack)
    await dbstack.database.stop()
    # What a leader that died mid-backup leaves behind: a BUILDING record
    # (written while no DatabaseService runs, as the dead one would have).
    cfg = dbstack.stack.cfg
    store = await Store.connect(cfg.etcd_endpoint, cfg.etcd_prefix)
    stuck = B.Backup(id="stuck-backup", name="b", project_id="demo", instance_id=inst.id,
                     datastore=inst.datastore, status=B.BACKUP_STATUS_BUILDING)
    await store.create(keys.db_backup(stuck.id), R.BackupRecord(backup=stuck))
    await store.close()
    await dbstack.start_database()
    failed = await dbstack.wait_backup_settled(stuck.id)
    assert failed.status == B.BACKUP_STATUS_FAILED and "interrupted" in failed.fail_reason
    await delete_instance(dbstack, inst.id)


async def test_backup_and_restore_refusals(dbstack):
    inst = await active(dbstack)
    for request, code, field in [
        (B.CreateBackupRequest(instance_id=inst.id, name=""), INV, "name"),
        (B.CreateBackupRequest(instance_id=inst.id, name="b", incremental_of="x"), INV, "incremental_of"),
        (B.CreateBackupRequest(instance_id="nope", name="b"), NF, "database instance"),
    ]:
        await expect(dbstack.backups.CreateBackup(request, metadata=ALICE), code, field)
    await expect(dbstack.backups.CreateBackup(B.CreateBackupRequest(instance_id=inst.id, name="b"),
                                              metadata=BOB), NF, "database instance")
    backup = await completed_backup(dbstack, inst)
    path = os.path.join(dbstack.backup_dir, backup.id)
    with open(path, "rb") as f:
        good = f.read()

    def missing():
        os.unlink(path)

    def corrupt():
        with open(path, "r+b") as f:
            f.write(bytes([good[0] ^ 1]))

    restore = D.RestorePoint(backup_ref=backup.id)
    cases = [
        ("another project's", dict(restore_point=restore), BOB, None, NF, "backup"),
        ("another datastore", dict(datastore="mariadb", restore_point=restore), ALICE, None, INV,
         "restore_point.backup_ref"),
        ("bytes missing", dict(restore_point=restore), ALICE, missing, FP, ""),
        ("checksum wrong", dict(restore_point=restore), ALICE, corrupt, FP, ""),
    ]
    for label, fields, who, damage, code, field in cases:
        if damage:
            damage()
        await expect(dbstack.db.CreateInstance(create_request(name="db2", **fields), metadata=who),
                     code, field)
        with open(path, "wb") as f:
            f.write(good)
    listed = await dbstack.db.ListInstances(D.ListInstancesRequest(all_projects=True), metadata=ADMIN)
    assert [i.id for i in listed.instances] == [inst.id]   # nothing left behind

    await dbstack.database.store.txn([], [dbstack.database.store.put(keys.db_quota("demo"),
                                                                      R.DbQuota(backups=1))])
    await expect(dbstack.backups.CreateBackup(B.CreateBackupRequest(instance_id=inst.id, name="b2"),
                                              metadata=ALICE), grpc.StatusCode.RESOURCE_EXHAUSTED)
    await delete_instance(dbstack, inst.id)
    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=backup.id), metadata=ALICE)


@pytest.mark.parametrize("size,volume_gb,expected", [
    (GIB, 1, False), (GIB + 1, 1, True), (5 * GIB, 10, False), (0, 1, False)])
def test_backup_too_large_compares_bytes_with_the_volume(size, volume_gb, expected):
    assert too_large(size, volume_gb) is expected


async def test_grpcurl_reaches_the_new_rpcs_through_reflection(dbstack):
    from test_grpcurl import grpcurl
    rc, out, _ = await grpcurl(dbstack.address, "list", auth=None)
    assert rc == 0 and "nimbus.database.v1.BackupService" in out.split()
    rc, out, _ = await grpcurl(dbstack.address, "describe", "nimbus.database.v1.DatabaseService", auth=None)
    assert rc == 0 and all(f"rpc {name}" in out for name in ("DetachReplica", "ResizeVolume", "ResizeInstance"))
    rc, out, err = await grpcurl(dbstack.address, "nimbus.database.v1.BackupService/ListBackups", data={})
    assert rc == 0 and json.loads(out or "{}") == {}, err
    rc, _, err = await grpcurl(dbstack.address, "nimbus.database.v1.BackupService/GetBackup",
                               data={"id": "nope"})
    assert rc != 0 and "NotFound" in err, err
