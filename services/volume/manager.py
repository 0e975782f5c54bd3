"""The volume manager (cinder-volume): a leader-elected controller over
volumes/ and snapshots/ for one backend. It lists and watches the records;
each one whose status asks for work (creating, extending, deleting) is
reconciled: read fresh, do the step on the backend (idempotent), write
the outcome by CAS with the quota change in the same transaction.

Crash safety is level-triggered: a manager killed at any point leaves the
record in its transitional status, and the next leader's first list finds
it and runs the step again (backends overwrite or ignore what a crashed
step left), so a volume ends available, error or gone, never creating.

    creating   -> available            | error (fault; quota stays, as Cinder)
    extending  -> available, new size  | error_extending (the extra GB given back)
    deleting   -> gone, quota released | error_deleting (fault)
    snapshot creating -> available     | error
    snapshot deleting -> gone          | error_deleting
    attaching  -> the connection (how the host reaches the volume) written
                  into the server's InstanceVolume; the host does the rest
    attached to a server that is gone (deleted) -> available, or deleting
                  when the attachment says delete_on_termination
"""

from __future__ import annotations

import asyncio
import uuid

import grpc

from nimbus import crashpoints, errors, log, quota
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.services.database.controller import Controller
from nimbus.services.volume import lifecycle as L
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.informer import DELETED, GAP, Deletions, Informer
from nimbus.store.store import Store, now
from nimbus.volume.v1 import volume_pb2 as V
from nimbus.volumebackend import BackendBusy, BackendError

_log = log.get("nimbus.volume.manager")
VS, SS = L.VS, L.SS


class Stale(Exception):
    """The record moved on while we worked (someone else's step won)."""


ATTACHED = (VS.VOLUME_STATUS_ATTACHING, VS.VOLUME_STATUS_IN_USE, VS.VOLUME_STATUS_DETACHING)


class LostRace(Exception):
    """A transaction lost to a concurrent change: reconcile again."""


class VolumeManager:
    def __init__(self, store: Store, backend, backend_name: str, images=None):
        self.store = store
        self.backend = backend
        self.backend_name = backend_name
        self.images = images          # (image_id) -> (Image, chunks factory), from the API
        self.volumes = Informer(store, keys.VOLUMES, R.VolumeRecord)
        self.snapshots = Informer(store, keys.SNAPSHOTS, R.SnapshotRecord)
        # Deleted servers, to release their volumes (only deletions: a
        # mirror of every server would receive every step of every boot).
        self.instances = Deletions(store, keys.INSTANCES, R.InstanceRecord)
        self.controller = Controller(f"volume-manager-{backend_name}", self.reconcile)

    # ---- leading ---------------------------------------------------------------

    def _mine(self, msg) -> bool:
        if isinstance(msg, R.VolumeRecord):
            return msg.volume.backend == self.backend_name and (
                msg.volume.status in L.VOLUME_WORK or msg.volume.attachments)
        return msg.backend == self.backend_name and msg.snapshot.status in L.SNAPSHOT_WORK

    def _on_change(self, kind, key, new, old) -> None:
        if kind != DELETED and self._mine(new.msg):
            self.controller.enqueue(key)

    def _on_instance(self, kind, key, new, old) -> None:
        if kind == DELETED and old is not None:
            for iv in old.msg.volumes:
                self.controller.enqueue(keys.volume(iv.volume_id))
        elif kind == GAP:
            # Deletions may have been missed: every attached volume looks
            # at its servers again (as when leading starts).
            for key, v in list(self.volumes.items.items()):
                if self._mine(v.msg) and v.msg.volume.attachments:
                    self.controller.enqueue(key)

    async def lead(self) -> None:
        await self.instances.synced.wait()
        self.instances.add_listener(self._on_instance)
        try:
            await self._lead()
        finally:
            self.instances.remove_listener(self._on_instance)

    async def _lead(self) -> None:
        informers = (self.volumes, self.snapshots)
        for informer in informers:
            await informer.synced.wait()
            informer.add_listener(self._on_change)
        try:
            for informer in informers:
                for key, v in list(informer.items.items()):
                    if self._mine(v.msg):
                        self.controller.enqueue(key)
            await asyncio.Event().wait()
        finally:
            for informer in informers:
                informer.remove_listener(self._on_change)
            await self.controller.stop()

    async def reconcile(self, key: str) -> None:
        try:
            if key.startswith(keys.VOLUMES):
                await self._volume(key)
            else:
                await self._snapshot(key)
        except (Stale, errors.NotFound):
            pass   # someone else's step won, or the record is gone: nothing to do

    # ---- volumes -------------------------------------------------------------------

    async def _volume(self, key: str) -> None:
        got = await self.store.get(key, R.VolumeRecord)
        if got is None or not self._mine(got.msg):
            return
        rec = got.msg
        status = rec.volume.status
        try:
            if status == VS.VOLUME_STATUS_CREATING:
                await self._create(rec)
                crashpoints.reach("volume-created")
                await self._finish(key, status, VS.VOLUME_STATUS_AVAILABLE)
            elif status == VS.VOLUME_STATUS_EXTENDING:
                await self.backend.extend(rec.volume.id, rec.extend_to_gb)
                await self._finish(key, status, VS.VOLUME_STATUS_AVAILABLE, extended=True)
            elif status == VS.VOLUME_STATUS_DELETING:
                await self.backend.delete(rec.volume.id)
                crashpoints.reach("volume-deleted-on-backend")
                await self._remove(key)
            elif rec.volume.attachments:
                await self._attachments(got)
        except BackendError as exc:
            if status not in L.VOLUME_WORK:
                raise   # an attachment's step: the controller tries again
            await self._fail(key, status, str(exc))

    async def _attachments(self, got) -> None:
        """Give an attaching server its connection; release a volume whose
        server is gone. Each in one transaction comparing both records."""
        volume = got.msg.volume
        for attachment in volume.attachments:
            ikey = keys.instance(attachment.server_id)
            inst = await self.store.get(ikey, R.InstanceRecord)
            iv = next((v for v in inst.msg.volumes if v.volume_id == volume.id),
                      None) if inst is not None else None
            vrec = R.VolumeRecord()
            vrec.CopyFrom(got.msg)
            if iv is None:
                kept = [a for a in vrec.volume.attachments if a.server_id != attachment.server_id]
                del vrec.volume.attachments[:]
                vrec.volume.attachments.extend(kept)
                if not kept:
                    doomed = attachment.delete_on_termination and not vrec.snapshot_ids
                    if doomed:
                        vrec.volume.status = VS.VOLUME_STATUS_DELETING
                    elif vrec.volume.status in ATTACHED:
                        vrec.volume.status = VS.VOLUME_STATUS_AVAILABLE
                L.touch(vrec.volume)
                compares = [self.store.mod_is(ikey, inst.mod_revision if inst else 0)]
                ops = [self.store.put(keys.volume(volume.id), vrec)]
                _log.info("volume released by a deleted server", volume_id=volume.id,
                          server_id=attachment.server_id,
                          status=L.volume_status(vrec.volume.status))
            elif (iv.state == R.InstanceVolume.STATE_ATTACHING and not iv.connection.driver
                  and not iv.error and volume.status in (VS.VOLUME_STATUS_ATTACHING,
                                                         VS.VOLUME_STATUS_ERROR)):
                if volume.status == VS.VOLUME_STATUS_ERROR:
                    iv.error = volume.fault or "the volume could not be created"   # the build fails
                else:
                    iv.connection.CopyFrom(await self.backend.connection(volume.id))
                compares = [self.store.mod_is(ikey, inst.mod_revision)]
                ops = [self.store.put(ikey, inst.msg)]
            else:
                continue
            vkey = keys.volume(volume.id)
            resp = await self.store.txn([self.store.mod_is(vkey, got.mod_revision), *compares], ops)
            if not resp.succeeded:
                # The server changed meanwhile (its host reports often): the
                # controller runs this again after a short backoff.
                raise LostRace(f"{vkey} or {ikey} changed; again")
            return   # one step; the write re-enqueues the key for the next

    async def _create(self, rec: R.VolumeRecord) -> None:
        v = rec.volume
        if v.snapshot_id:
            snap = await self.store.get(keys.snapshot(v.snapshot_id), R.SnapshotRecord)
            if snap is None:
                raise BackendError(f"snapshot {v.snapshot_id} was deleted")
            await self.backend.create_from_snapshot(v.id, v.snapshot_id, v.size_gb,
                                                    snapshot_volume_id=snap.msg.snapshot.volume_id)
        elif v.source_volume_id:
            await self.backend.create_from_volume(v.id, v.source_volume_id, v.size_gb)
        elif v.image_id:
            try:
                image, chunks = await self.images(v.image_id)
            except errors.NimbusError as exc:
                raise BackendError(f"image {v.image_id}: {exc.message}") from None
            await self.backend.create_from_image(v.id, image, chunks, v.size_gb)
        else:
            await self.backend.create(v.id, v.size_gb)

    async def _finish(self, key: str, expected: int, status: int, extended: bool = False) -> None:
        def step(rec: R.VolumeRecord) -> L.Change:
            if rec.volume.status != expected:
                raise Stale()
            rec.volume.status = status
            if status == VS.VOLUME_STATUS_AVAILABLE and rec.volume.attachments:
                # Made for a server's boot: its attach follows at once.
                rec.volume.status = VS.VOLUME_STATUS_ATTACHING
            if extended:
                rec.volume.size_gb, rec.extend_to_gb = rec.extend_to_gb, 0
            rec.volume.fault = ""
            L.touch(rec.volume)
            return L.Change(rec)
        await L.transition(self.store, key, R.VolumeRecord, step, not_found=Stale())
        _log.info("volume step done", key=key, status=L.volume_status(status))

    async def _fail(self, key: str, expected: int, fault: str) -> None:
        failed = {VS.VOLUME_STATUS_CREATING: VS.VOLUME_STATUS_ERROR,
                  VS.VOLUME_STATUS_EXTENDING: VS.VOLUME_STATUS_ERROR_EXTENDING,
                  VS.VOLUME_STATUS_DELETING: VS.VOLUME_STATUS_ERROR_DELETING}[expected]

        def step(rec: R.VolumeRecord) -> L.Change:
            if rec.volume.status != expected:
                raise Stale()
            deltas = {}
            if expected == VS.VOLUME_STATUS_EXTENDING:
                deltas = {"gigabytes": rec.volume.size_gb - rec.extend_to_gb}
                rec.extend_to_gb = 0
            rec.volume.status = failed
            rec.volume.fault = fault
            L.touch(rec.volume)
            return L.Change(rec, rec.volume.project_id, deltas)
        await L.transition(self.store, key, R.VolumeRecord, step, not_found=Stale())
        _log.warning("volume step failed", key=key, status=L.volume_status(failed), fault=fault)

    async def _remove(self, key: str) -> None:
        """The record goes and its quota comes back, in one transaction."""
        def step(rec: R.VolumeRecord) -> L.Change:
            if rec.volume.status != VS.VOLUME_STATUS_DELETING:
                raise Stale()
            return L.Change(None, rec.volume.project_id, quota.volume_deltas(rec.volume.size_gb, -1))
        await L.transition(self.store, key, R.VolumeRecord, step, not_found=Stale())
        _log.info("volume deleted", key=key)

    # ---- snapshots -----------------------------------------------------------------

    async def _snapshot(self, key: str) -> None:
        got = await self.store.get(key, R.SnapshotRecord)
        if got is None or not self._mine(got.msg):
            return
        snap = got.msg.snapshot
        status = snap.status
        try:
            if status == SS.SNAPSHOT_STATUS_CREATING:
                await self.backend.snapshot(snap.id, snap.volume_id)
                await self._snapshot_status(key, status, SS.SNAPSHOT_STATUS_AVAILABLE)
            elif status == SS.SNAPSHOT_STATUS_DELETING:
                await self.backend.delete_snapshot(snap.id, snap.volume_id)
                await self._remove_snapshot(key)
        except BackendBusy as exc:
            # Cinder's SnapshotIsBusy: the snapshot stays, available, saying why.
            await self._snapshot_status(key, status, SS.SNAPSHOT_STATUS_AVAILABLE, str(exc))
        except BackendError as exc:
            failed = (SS.SNAPSHOT_STATUS_ERROR if status == SS.SNAPSHOT_STATUS_CREATING
                      else SS.SNAPSHOT_STATUS_ERROR_DELETING)
            await self._snapshot_status(key, status, failed, str(exc))

    async def _snapshot_status(self, key: str, expected: int, status: int, fault: str = "") -> None:
        def step(rec: R.SnapshotRecord) -> L.Change:
            if rec.snapshot.status != expected:
                raise Stale()
            rec.snapshot.status = status
            rec.snapshot.fault = fault
            rec.snapshot.updated_at.CopyFrom(now())
            return L.Change(rec)
        await L.transition(self.store, key, R.SnapshotRecord, step, not_found=Stale())
        _log.info("snapshot step done", key=key, status=L.snapshot_status(status), fault=fault)

    async def _remove_snapshot(self, key: str) -> None:
        """The snapshot record goes, its id leaves the volume's list and its
        quota comes back, in one transaction (compared on both records)."""
        async def step(rec: R.SnapshotRecord) -> L.Change:
            snap = rec.snapshot
            if snap.status != SS.SNAPSHOT_STATUS_DELETING:
                raise Stale()
            compares, ops = [], []
            vkey = keys.volume(snap.volume_id)
            vol = await self.store.get(vkey, R.VolumeRecord)
            if vol is not None:
                if snap.id in vol.msg.snapshot_ids:
                    vol.msg.snapshot_ids.remove(snap.id)
                compares.append(self.store.mod_is(vkey, vol.mod_revision))
                ops.append(self.store.put(vkey, vol.msg))
            return L.Change(None, snap.project_id, L.snapshot_deltas(snap.size_gb, -1),
                            compares, ops)
        await L.transition(self.store, key, R.SnapshotRecord, step, not_found=Stale())
        _log.info("snapshot deleted", key=key)


async def ensure_volume_type(store: Store, name: str, backend: str) -> None:
    """The default type exists (created by the first manager that needs it)."""
    if await store.get_raw(keys.volume_type(name)) is None:
        try:
            await store.create(keys.volume_type(name), V.VolumeType(
                id=str(uuid.uuid4()), name=name, backend=backend,
                description="the default volume type", created_at=now()))
        except errors.AlreadyExists:
            pass


def image_source(api, metadata):
    """Images through the API (its DownloadImage, with the service token),
    as agents fetch them: the manager never reads the image store itself."""
    async def fetch(image_id: str):
        try:
            image = (await api.GetImage(C.GetImageRequest(ref=image_id), metadata=metadata,
                                        timeout=30)).image
        except grpc.aio.AioRpcError as exc:
            raise errors.FailedPrecondition(exc.details() or exc.code().name) from None

        async def chunks():
            async for part in api.DownloadImage(C.DownloadImageRequest(id=image_id),
                                                metadata=metadata):
                yield part.chunk
        return image, chunks
    return fetch
