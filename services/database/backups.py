"""Backups (Trove's backup model and the task manager's create_backup):
records at db/backups/<id>, the bytes in the backup store.

    NEW        CreateBackup wrote it with its quota (one transaction)
    BUILDING   the leading task manager told the instance's guest to take it
               (TakeBackup); the guest dumps with the datastore's own tool
               and streams the bytes to UploadBackup
    COMPLETED  UploadBackup stored every byte and the guest's size and
               checksum agreed with what arrived
    FAILED     the guest refused or died, the stream broke, or a task
               manager found it BUILDING without having started it itself
               (its leader restarted): nothing stays BUILDING

Only the guest named on the record may upload it, only while BUILDING; a
guest may download only the backup its own instance restores from.
"""

from __future__ import annotations

import asyncio

from nimbus import errors, log
from nimbus.database.v1 import backups_pb2 as B
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import guest_pb2 as G
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database import status
from nimbus.services.database.backupstore import BackupStore, RadosBackupStore
from nimbus.services.database.controller import Controller
from nimbus.store import keys
from nimbus.store.informer import DELETED, Informer
from nimbus.store.store import Store, now

_log = log.get("nimbus.database.backups")
GIB = 1 << 30


def status_name(value: int) -> str:
    return B.BackupStatus.Name(value).removeprefix("BACKUP_STATUS_")


async def set_status(store: Store, backup_id: str, expected: tuple[int, ...], mutate) -> bool:
    """CAS from one of `expected`; False when the backup moved on (or is gone)."""
    def guarded(rec: R.BackupRecord):
        if rec.backup.status not in expected:
            raise errors.FailedPrecondition(f"backup {backup_id} is {status_name(rec.backup.status)}")
        mutate(rec)
        rec.backup.updated_at.CopyFrom(now())
    try:
        await store.update(keys.db_backup(backup_id), R.BackupRecord, guarded)
        return True
    except (errors.FailedPrecondition, errors.NotFound):
        return False


async def fail(store: Store, backup_id: str, reason: str) -> bool:
    def mutate(rec: R.BackupRecord):
        rec.backup.status = B.BACKUP_STATUS_FAILED
        rec.backup.fail_reason = errors.bounded(reason)
    done = await set_status(store, backup_id, (B.BACKUP_STATUS_NEW, B.BACKUP_STATUS_BUILDING), mutate)
    if done:
        _log.warning("backup failed", backup_id=backup_id, reason=reason)
    return done


def too_large(size_bytes: int, volume_gb: int) -> bool:
    """Trove's BackupTooLarge: the backup does not fit the new volume."""
    return size_bytes > volume_gb * GIB


class Backups:
    """The backup store, the guests' upload and download, and the backup
    task (a controller the leading task manager runs)."""

    def __init__(self, store: Store, backups: Informer, instances: Informer,
                 backup_store: BackupStore | RadosBackupStore,
                 timeout: float = 3600):
        self.store = store
        self.backups = backups
        self.instances = instances
        self.bytes = backup_store
        self.timeout = timeout
        self.hub = None
        self.controller = Controller("backups", self.reconcile)
        self.started: set[str] = set()   # taken by this leader's term
        # Uploads in progress in this process, set when each ends (cleaned
        # up and FAILED, or COMPLETED): the guest's answer waits for it.
        self.uploads: dict[str, asyncio.Event] = {}

    # ---- the task (leader only) ---------------------------------------------

    def _on_change(self, kind, key, new, old) -> None:
        if kind != DELETED and new.msg.backup.status in (B.BACKUP_STATUS_NEW, B.BACKUP_STATUS_BUILDING):
            self.controller.enqueue(key)

    async def lead(self) -> None:
        await self.backups.synced.wait()
        self.backups.add_listener(self._on_change)
        try:
            for key in list(self.backups.items):
                self.controller.enqueue(key)
            await asyncio.Event().wait()
        finally:
            self.backups.remove_listener(self._on_change)
            await self.controller.stop()
            self.started.clear()

    async def reconcile(self, key: str) -> None:
        got = await self.store.get(key, R.BackupRecord)
        if got is None:
            return
        backup = got.msg.backup
        if backup.status == B.BACKUP_STATUS_BUILDING and backup.id not in self.started:
            # Whatever the dead upload wrote goes first: FAILED then means clean
            # (a crash in between leaves it BUILDING, and the next leader repeats).
            await self.bytes.delete(backup.id)
            await fail(self.store, backup.id, "interrupted: DatabaseService restarted while it was taken")
            return
        if backup.status != B.BACKUP_STATUS_NEW:
            return
        inst = await self.store.get(keys.db_instance(backup.instance_id), R.InstanceRecord)
        if inst is None or inst.msg.instance.status != status.READY:
            await fail(self.store, backup.id, f"database instance {backup.instance_id} is not ACTIVE")
            return
        guest_id = inst.msg.guest_id

        def building(rec: R.BackupRecord):
            rec.backup.status = B.BACKUP_STATUS_BUILDING
            rec.guest_id = guest_id
        self.started.add(backup.id)
        if not await set_status(self.store, backup.id, (B.BACKUP_STATUS_NEW,), building):
            return
        try:
            result = await self.hub.call(guest_id, timeout=self.timeout,
                                         take_backup=G.TakeBackup(backup_id=backup.id))
        except errors.Unavailable as exc:
            result = G.Result(ok=False, error=str(exc))
        if not result.ok:
            # A broken upload cleans up and fails itself; FAILED is set only
            # once no chunk of it is left (or, no upload here, now).
            upload = self.uploads.get(backup.id)
            if upload is not None:
                await upload.wait()
            current = await self.store.get(keys.db_backup(backup.id), R.BackupRecord)
            if current is not None and current.msg.backup.status == B.BACKUP_STATUS_BUILDING:
                await self.bytes.delete(backup.id)
                await fail(self.store, backup.id, f"the guest agent could not take it: {result.error}")
            return
        # The guest answers only after UploadBackup returned: COMPLETED by now.
        await fail(self.store, backup.id, "the guest agent answered but stored no bytes")

    # ---- the guest's side -----------------------------------------------------

    async def receive(self, guest_id: str, requests) -> G.UploadBackupResponse:
        """UploadBackup: header, data, trailer; COMPLETED by CAS at the end.
        A broken stream (the guest died) is FAILED at once."""
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("part") != "header":
            raise errors.InvalidArgument("header", "an upload starts with its header")
        backup_id = first.header.backup_id
        got = await self.store.get(keys.db_backup(backup_id), R.BackupRecord)
        if got is None or got.msg.guest_id != guest_id:
            raise errors.NotFound("backup", backup_id)
        if got.msg.backup.status != B.BACKUP_STATUS_BUILDING:
            raise errors.FailedPrecondition(f"backup {backup_id} is "
                                            f"{status_name(got.msg.backup.status)}, not BUILDING")
        ended = self.uploads[backup_id] = asyncio.Event()
        try:
            return await self._receive(backup_id, first, requests)
        finally:
            self.uploads.pop(backup_id, None)
            ended.set()

    async def _receive(self, backup_id: str, first, requests) -> G.UploadBackupResponse:
        part = self.bytes.open_part(backup_id)
        trailer = None
        try:
            async for msg in requests:
                kind = msg.WhichOneof("part")
                if kind == "data" and trailer is None:
                    await part.write(msg.data)
                elif kind == "trailer" and trailer is None:
                    trailer = msg.trailer
                else:
                    raise errors.InvalidArgument(kind or "part", "data, then one trailer")
            if trailer is None:
                raise errors.InvalidArgument("trailer", "the upload ended without its trailer")
            checksum = part.hash.hexdigest()
            if (trailer.size_bytes, trailer.checksum_sha256) != (part.size, checksum):
                raise errors.FailedPrecondition(
                    f"the guest sent {trailer.size_bytes} bytes ({trailer.checksum_sha256[:12]}), "
                    f"{part.size} ({checksum[:12]}) arrived")
            location = await part.commit()
        except BaseException as exc:
            await part.abort()
            await fail(self.store, backup_id, f"the upload broke off: {exc.__class__.__name__} {exc}")
            raise

        def completed(rec: R.BackupRecord):
            rec.backup.status = B.BACKUP_STATUS_COMPLETED
            rec.backup.size_bytes, rec.backup.checksum_sha256 = part.size, checksum
            rec.backup.tool = first.header.tool
            rec.location = location
        if not await set_status(self.store, backup_id, (B.BACKUP_STATUS_BUILDING,), completed):
            await self.bytes.delete(location)   # failed (or deleted) meanwhile: its bytes are no one's
            raise errors.FailedPrecondition(f"backup {backup_id} is no longer BUILDING")
        _log.info("backup completed", backup_id=backup_id, size=part.size, tool=first.header.tool)
        return G.UploadBackupResponse(size_bytes=part.size, checksum_sha256=checksum)

    async def send(self, guest_id: str, backup_id: str):
        """DownloadBackup: only the backup this guest's instance restores from."""
        guest = await self.store.get(keys.guest(guest_id), R.GuestRecord)
        inst = guest and await self.store.get(keys.db_instance(guest.msg.instance_id), R.InstanceRecord)
        if inst is None or inst.msg.restore_backup_id != backup_id:
            raise errors.NotFound("backup", backup_id)
        got = await self.store.get(keys.db_backup(backup_id), R.BackupRecord)
        if got is None or got.msg.backup.status != B.BACKUP_STATUS_COMPLETED:
            raise errors.NotFound("backup", backup_id)
        async for chunk in self.bytes.read(got.msg.location):
            yield G.DownloadBackupResponse(data=chunk)

    # ---- restore checks (CreateInstance) ----------------------------------------

    async def restore_source(self, project_id: str, is_admin: bool, ref: str, datastore: str,
                             volume_gb: int, uses_volume: bool) -> R.BackupRecord:
        """Trove's restore checks: the backup exists for this project, is
        COMPLETED, of the same datastore, fits the volume, and its bytes are
        there with the recorded checksum."""
        field = "restore_point.backup_ref"
        if not ref:
            raise errors.InvalidArgument(field, "a backup id is required")
        got = await self.store.get(keys.db_backup(ref), R.BackupRecord)
        if got is None or (got.msg.backup.project_id != project_id and not is_admin):
            raise errors.NotFound("backup", ref)
        backup = got.msg.backup
        if backup.status != B.BACKUP_STATUS_COMPLETED:
            raise errors.FailedPrecondition(f"backup {ref} is {status_name(backup.status)}, not COMPLETED")
        if backup.datastore.type != datastore:
            raise errors.InvalidArgument(field, f"backup {ref} is of datastore {backup.datastore.type}, "
                                         f"not {datastore}")
        if uses_volume and too_large(backup.size_bytes, volume_gb):
            raise errors.InvalidArgument("volume.size_gb", f"BackupTooLarge: backup {ref} is "
                                         f"{backup.size_bytes / GIB:.2f} GB, the volume {volume_gb} GB")
        if await self.bytes.size(got.msg.location) != backup.size_bytes:
            raise errors.FailedPrecondition(f"backup {ref}: its bytes are missing from the backup store")
        if await self.bytes.checksum(got.msg.location) != backup.checksum_sha256:
            raise errors.FailedPrecondition(f"backup {ref}: its bytes do not match the recorded checksum")
        return got.msg
