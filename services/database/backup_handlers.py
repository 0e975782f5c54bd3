"""BackupService handlers (Trove's backups API): thin; the task and the
guests' streams live in backups.py. Backups are project-scoped (another
project's is NOT_FOUND) and outlive their instance."""

from __future__ import annotations

import uuid

from nimbus import errors, pagination
from nimbus.database.v1 import backups_pb2 as B
from nimbus.database.v1 import backups_pb2_grpc
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database import quotas, status, watching
from nimbus.services.database.backups import Backups, status_name
from nimbus.services.database.handlers import caller
from nimbus.store import keys
from nimbus.store.store import Store, now


class BackupServicer(backups_pb2_grpc.BackupServiceServicer):
    def __init__(self, store: Store, backups: Backups):
        self.store = store
        self.backups = backups

    async def CreateBackup(self, request, context):
        who = caller()
        name = request.name.strip()
        if not name or len(name) > 255:
            raise errors.InvalidArgument("name", "1 to 255 characters are required")
        if request.incremental_of:
            raise errors.InvalidArgument("incremental_of", "incremental backups are not supported yet: "
                                         "every backup is a full dump")
        if not request.instance_id:
            raise errors.InvalidArgument("instance_id", "an instance is required")
        got = await self.store.get(keys.db_instance(request.instance_id), R.InstanceRecord)
        if got is None or (got.msg.instance.project_id != who.project_id and not who.is_admin):
            raise errors.NotFound("database instance", request.instance_id)
        inst = got.msg.instance
        if inst.status != status.READY:
            raise errors.FailedPrecondition(
                f"database instance {inst.id} is {status.name(inst.status)}, not ACTIVE")
        created = now()
        backup = B.Backup(id=str(uuid.uuid4()), name=name, description=request.description,
                          project_id=inst.project_id, instance_id=inst.id,
                          datastore=inst.datastore, status=B.BACKUP_STATUS_NEW,
                          created_at=created, updated_at=created)
        key = keys.db_backup(backup.id)
        while True:
            plan = await quotas.plan(self.store, inst.project_id, {"backups": 1})
            resp = await self.store.txn([self.store.mod_is(key, 0), *plan.compares],
                                        [self.store.put(key, R.BackupRecord(backup=backup)), *plan.ops])
            if resp.succeeded:
                return B.CreateBackupResponse(backup=backup)

    async def _get(self, backup_id: str):
        who = caller()
        got = await self.store.get(keys.db_backup(backup_id), R.BackupRecord) if backup_id else None
        if got is None or (got.msg.backup.project_id != who.project_id and not who.is_admin):
            raise errors.NotFound("backup", backup_id)
        return got

    async def GetBackup(self, request, context):
        return B.GetBackupResponse(backup=(await self._get(request.id)).msg.backup)

    def _visible(self, all_projects: bool):
        who = caller()
        if all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is for admins")
        return lambda rec: all_projects or rec.backup.project_id == who.project_id

    async def ListBackups(self, request, context):
        visible = self._visible(request.all_projects)
        items, _ = await self.store.list(keys.DB_BACKUPS, R.BackupRecord)
        found = [v.msg.backup for _, v in items if visible(v.msg)
                 and request.instance_id in ("", v.msg.backup.instance_id)
                 and request.datastore in ("", v.msg.backup.datastore.type)]
        page, token = pagination.page_of(
            request, found, lambda b: [b.created_at.ToNanoseconds(), b.id], caller().project_id,
            request.all_projects, request.instance_id, request.datastore)
        return B.ListBackupsResponse(backups=page, next_page_token=token)

    async def DeleteBackup(self, request, context):
        got = await self._get(request.id)
        key = keys.db_backup(request.id)
        while True:
            backup = got.msg.backup
            if backup.status in (B.BACKUP_STATUS_NEW, B.BACKUP_STATUS_BUILDING):
                raise errors.FailedPrecondition(f"backup {backup.id} is {status_name(backup.status)}: "
                                                "wait until it is COMPLETED or FAILED")
            # Bytes first: a crash in between leaves a record whose restore is
            # refused (bytes missing) and which deletes again, never lost bytes.
            # A FAILED one has no location but may have left a partial write.
            await self.backups.bytes.delete(got.msg.location or backup.id)
            plan = await quotas.plan(self.store, backup.project_id, {"backups": -1})
            resp = await self.store.txn([self.store.mod_is(key, got.mod_revision), *plan.compares],
                                        [self.store.delete(key), *plan.ops])
            if resp.succeeded:
                return B.DeleteBackupResponse()
            got = await self.store.get(key, R.BackupRecord)
            if got is None:
                return B.DeleteBackupResponse()

    async def WatchBackups(self, request, context):
        visible = self._visible(request.all_projects)
        async for event in watching.stream(
                self.backups.backups,
                lambda rec: visible(rec) and request.id in ("", rec.backup.id),
                B.WatchBackupsResponse, "backup", lambda rec: rec.backup):
            yield event

