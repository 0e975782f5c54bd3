"""Database backups in a RADOS pool (`--backup-store rados`) against a real
single-node Ceph and real PostgreSQL: the guest streams its dump to
DatabaseService, which stripes it into chunk objects and writes the head
last; nothing goes under the state directory; a restore into a new
instance shows the rows; a delete leaves no object; a guest killed
mid-upload (a crash point, and kill -9 once chunks are in the pool)
leaves no visible backup and no object; a restarted service fails a
BUILDING backup and deletes its chunks; a partial write that never got its
head is invisible and goes with a delete."""

import asyncio
import hashlib
import json
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from dbstack import DbStack  # noqa: E402
from nimbus.database.v1 import backups_pb2 as B  # noqa: E402
from nimbus.database.v1 import database_pb2 as D  # noqa: E402
from nimbus.database.v1 import records_pb2 as R  # noqa: E402
from nimbus.services.database.backupstore import RadosBackupStore  # noqa: E402
from nimbus.store import keys  # noqa: E402
from nimbus.store.store import Store  # noqa: E402
from test_database_backups import ROWS, completed_backup, delete_instance, sql  # noqa: E402
from test_database_flow import ALICE  # noqa: E402
from test_database_guest import active  # noqa: E402

pytestmark = pytest.mark.ceph
POOL = "backups"
FILL = "insert into t select g, left(md5(g::text), 20) from generate_series(3, 3000) g"
OBJECT_SIZE = 16 << 10   # small, so a small dump spans many objects (production: 4 MiB)


def objects(ceph) -> dict[str, bytes]:
    import rados
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx(POOL) as ioctx:
        return {o.key: ioctx.read(o.key, 1 << 20) for o in ioctx.list_objects()}


@pytest.fixture(scope="module")
async def dbstack(etcd, tmp_path_factory, qcow2_image, ceph):
    if not ceph._rados.pool_exists(POOL):
        ceph.mon_command("osd pool create", pool=POOL, pg_num=ceph.pg_num, pgp_num=ceph.pg_num)
        with ceph._rados.open_ioctx(POOL) as ioctx:   # blocks until the pool's PGs are active
            ioctx.write_full("probe", b"")
            ioctx.remove_object("probe")
    tmp = tmp_path_factory.mktemp("radosbackups")
    async with DbStack(etcd.endpoint, str(tmp), qcow2_image, hosts=1, backup_store="rados",
                       ceph_conf=ceph.conf_path, rados_backups_object_size=OBJECT_SIZE) as s:
        yield s
    assert objects(ceph) == {}, "objects left behind in the backups pool"


async def test_backup_stored_in_ceph_restored_and_deleted(dbstack, ceph):
    source = await active(dbstack)
    sql(source, ROWS)
    sql(source, FILL)
    backup = await completed_backup(dbstack, source)
    assert not os.path.exists(dbstack.backup_dir)   # nothing under the state directory

    stored = objects(ceph)
    head = json.loads(stored.pop(backup.id))
    chunks = [f"{backup.id}.{i:08d}" for i in range(head["chunks"])]
    assert sorted(stored) == chunks and len(chunks) > 3
    assert all(len(stored[name]) == OBJECT_SIZE for name in chunks[:-1])
    data = b"".join(stored[name] for name in chunks)
    assert head == {"size": backup.size_bytes, "sha256": backup.checksum_sha256,
                    "chunks": len(chunks), "object_size": OBJECT_SIZE}
    assert len(data) == backup.size_bytes and hashlib.sha256(data).hexdigest() == backup.checksum_sha256

    restored = await active(dbstack, name="db2", restore_point=D.RestorePoint(backup_ref=backup.id))
    assert sql(restored, "select count(*), min(id), max(id) from t")[0] == "3000|1|3000"
    await delete_instance(dbstack, restored.id)
    await delete_instance(dbstack, source.id)

    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=backup.id), metadata=ALICE)
    assert await dbstack.wait_backup(backup.id, lambda b: b is None) is None
    assert objects(ceph) == {}


async def test_a_guest_killed_mid_upload_leaves_no_backup_and_no_object(dbstack, ceph, monkeypatch):
    # A real crash: the guest agent process exits (os._exit) after its first
    # chunk went out, mid-upload (the guest inherits the crash point).
    monkeypatch.setenv("NIMBUS_CRASH_AT", "guestagent.backup.streaming")
    crashing = await active(dbstack, name="db-crash")
    sql(crashing, ROWS)
    sql(crashing, FILL)
    new = (await dbstack.backups.CreateBackup(B.CreateBackupRequest(instance_id=crashing.id, name="b"),
                                              metadata=ALICE)).backup
    failed = await dbstack.wait_backup_settled(new.id)
    assert failed.status == B.BACKUP_STATUS_FAILED and failed.fail_reason
    assert await dbstack.database.backups.bytes.size(new.id) is None   # not visible
    assert objects(ceph) == {}                                            # nothing left
    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=new.id), metadata=ALICE)
    await delete_instance(dbstack, crashing.id)


async def test_a_guest_sigkilled_with_chunks_in_the_pool_leaves_no_object(dbstack, ceph):
    # kill -9 of the guest agent once the pool holds some of this backup's
    # chunks (~20 MB of rows: the upload takes long enough to be caught).
    inst = await active(dbstack, name="db-kill")
    sql(inst, "create table big (id int, v text); "
              "insert into big select g, repeat('x', 1000) from generate_series(1, 20000) g")
    new = (await dbstack.backups.CreateBackup(B.CreateBackupRequest(instance_id=inst.id, name="b"),
                                              metadata=ALICE)).backup
    import rados
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx(POOL) as ioctx:
        while len([o for o in ioctx.list_objects() if o.key.startswith(new.id + ".")]) < 2:
            await asyncio.sleep(0.01)
    record = await dbstack.database.store.get(keys.db_instance(inst.id), R.InstanceRecord)
    with open(os.path.join(dbstack.guest_dir, record.msg.guest_id, "agent.pid")) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    failed = await dbstack.wait_backup_settled(new.id)
    assert failed.status == B.BACKUP_STATUS_FAILED, "the upload finished before the kill"
    assert await dbstack.database.backups.bytes.size(new.id) is None
    assert objects(ceph) == {}
    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=new.id), metadata=ALICE)
    await delete_instance(dbstack, inst.id)


async def test_a_restarted_service_fails_a_building_backup_and_deletes_its_chunks(dbstack, ceph):
    # What a DatabaseService that died mid-upload leaves: the record BUILDING
    # and chunk objects without a head (written here, with the real writer,
    # while no DatabaseService runs, as the dead one would have).
    inst = await active(dbstack, name="db-restart")
    await dbstack.database.stop()
    store = RadosBackupStore(ceph.conf_path, POOL, object_size=OBJECT_SIZE)
    part = store.open_part("stuck-backup")
    await part.write(os.urandom(2 * OBJECT_SIZE))
    await store.close()
    cfg = dbstack.stack.cfg
    etcd = await Store.connect(cfg.etcd_endpoint, cfg.etcd_prefix)
    stuck = B.Backup(id="stuck-backup", name="b", project_id="demo", instance_id=inst.id,
                     datastore=inst.datastore, status=B.BACKUP_STATUS_BUILDING)
    await etcd.create(keys.db_backup(stuck.id), R.BackupRecord(backup=stuck))
    await etcd.close()
    assert sorted(objects(ceph)) == ["stuck-backup.00000000", "stuck-backup.00000001"]
    await dbstack.start_database()
    failed = await dbstack.wait_backup_settled(stuck.id)
    assert failed.status == B.BACKUP_STATUS_FAILED and "interrupted" in failed.fail_reason
    assert objects(ceph) == {}
    await dbstack.backups.DeleteBackup(B.DeleteBackupRequest(id=stuck.id), metadata=ALICE)
    await delete_instance(dbstack, inst.id)


async def test_a_write_without_its_head_is_invisible_and_deleted(ceph, dbstack):
    # What a DatabaseService that died mid-upload leaves (its process gone
    # before commit or abort): chunk objects and no head.
    import rados
    store = RadosBackupStore(ceph.conf_path, POOL, object_size=OBJECT_SIZE)
    try:
        part = store.open_part("left-over")
        await part.write(os.urandom(3 * OBJECT_SIZE + 5))
        assert sorted(objects(ceph)) == [f"left-over.{i:08d}" for i in range(3)]
        assert await store.size("left-over") is None
        await store.delete("left-over")
        assert objects(ceph) == {}

        part = store.open_part("complete")
        payload = os.urandom(2 * OBJECT_SIZE + 7)
        await part.write(payload)
        assert await part.commit() == "complete"
        assert await store.size("complete") == len(payload)
        assert await store.checksum("complete") == hashlib.sha256(payload).hexdigest()
        assert b"".join([c async for c in store.read("complete")]) == payload
        with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx(POOL) as ioctx:
            ioctx.remove_object("complete.00000001")   # damage: a chunk gone
        assert await store.checksum("complete") == ""   # a restore is refused, not an INTERNAL error
        await store.delete("complete")
        await store.delete("complete")   # idempotent
        assert objects(ceph) == {}
    finally:
        await store.close()
