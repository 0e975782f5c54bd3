"""VolumeService: the block-storage API (cinder-api). It validates and
writes; the volume manager of each backend does the work (see manager.py).
Every record change is lifecycle.transition: a CAS on the record with the
quota change in the same transaction. A volume or snapshot of another
project is NOT_FOUND, as a server is."""

from __future__ import annotations

import uuid

from nimbus import errors, log, pagination, quota
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.rpc import auth
from nimbus.services.compute.validation import validate_metadata, validate_name
from nimbus.services.volume import lifecycle as L
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.informer import DELETED, OVERFLOW, SYNCED, Informer
from nimbus.store.store import ExtraCompareFailed, Store, now
from nimbus.volume.v1 import volume_pb2 as V, volume_pb2_grpc
from nimbus.volumebackend import BACKENDS, GIB

_log = log.get("nimbus.volume.api")
VS, SS = L.VS, L.SS
DEFAULT_ZONE = "nova"   # Cinder's default storage availability zone
MAX_SIZE_GB = 65536     # a sanity bound below the quota (64 TB)


def check_text(value: str, field: str, required: bool = False) -> str:
    return validate_name(value, field, required)


def check_size(size_gb: int, field: str, at_least: int = 1) -> int:
    if size_gb < at_least:
        raise errors.InvalidArgument(field, f"must be at least {at_least} (GB)")
    if size_gb > MAX_SIZE_GB:
        raise errors.InvalidArgument(field, f"must be at most {MAX_SIZE_GB} (GB)")
    return size_gb


def volume_view(volume: V.Volume, who: auth.Identity) -> V.Volume:
    """The backend is for admins only."""
    if volume.backend and not who.is_admin:
        copy = V.Volume()
        copy.CopyFrom(volume)
        copy.backend = ""
        return copy
    return volume


def newest_first(created) -> list:
    return [created.created_at.ToNanoseconds(), created.id]


class VolumeServicer(volume_pb2_grpc.VolumeServiceServicer):
    def __init__(self, store: Store, catalog, default_volume_type: str = "default"):
        self.store = store
        self.catalog = catalog        # images by id or name (compute's Catalog)
        self.default_volume_type = default_volume_type
        self.volumes = Informer(store, keys.VOLUMES, R.VolumeRecord)
        self.snapshots = Informer(store, keys.SNAPSHOTS, R.SnapshotRecord)
        self.informers = (self.volumes, self.snapshots)

    # ---- volumes ---------------------------------------------------------------

    async def _volume_type(self, name: str) -> V.VolumeType:
        name = name or self.default_volume_type
        got = await self.store.get(keys.volume_type(name), V.VolumeType)
        if got is None:
            raise errors.NotFound("volume_type", name)
        return got.msg

    async def _source(self, request, who, vtype: V.VolumeType, volume: V.Volume) -> tuple[int, list]:
        """Check the request's source; the volume's size and the compares that
        keep the source as it was checked until the create commits."""
        source = request.WhichOneof("source")
        if source == "snapshot_id":
            snap = await L.get_snapshot(self.store, request.snapshot_id, who)
            L.require_snapshot_status(snap.msg.snapshot, (SS.SNAPSHOT_STATUS_AVAILABLE,),
                                      "create a volume from")
            if snap.msg.backend != vtype.backend:
                raise errors.InvalidArgument(
                    "volume_type", f"a volume from snapshot {snap.msg.snapshot.id} must use a type "
                    f"of its backend ({snap.msg.backend})")
            volume.snapshot_id = snap.msg.snapshot.id
            base = snap.msg.snapshot.size_gb
            size = check_size(request.size_gb or base, "size_gb", base)
            return size, [self.store.mod_is(keys.snapshot(volume.snapshot_id), snap.mod_revision)]
        if source == "source_volume_id":
            src = await L.get_volume(self.store, request.source_volume_id, who)
            L.require_volume_status(src.msg.volume, L.CLONABLE, "clone")
            if src.msg.volume.backend != vtype.backend:
                raise errors.InvalidArgument(
                    "volume_type", f"a clone of volume {src.msg.volume.id} must use a type of its "
                    f"backend ({src.msg.volume.backend})")
            volume.source_volume_id = src.msg.volume.id
            volume.bootable = src.msg.volume.bootable
            base = src.msg.volume.size_gb
            size = check_size(request.size_gb or base, "size_gb", base)
            return size, [self.store.mod_is(keys.volume(volume.source_volume_id), src.mod_revision)]
        if source == "image_ref":
            image = (await self.catalog.image(request.image_ref, "image_ref", who)).image
            if image.status != C.IMAGE_STATUS_ACTIVE:
                raise errors.FailedPrecondition(f"image {image.id} is not active")
            if image.disk_format in ("aki", "ari", "iso"):
                raise errors.InvalidArgument("image_ref", f"a {image.disk_format} image is not a disk")
            needed = max(1, image.min_disk_gb, -(-image.size // GIB) if image.disk_format == "raw" else 1)
            volume.image_id = image.id
            volume.bootable = True
            return check_size(request.size_gb, "size_gb", needed), []
        return check_size(request.size_gb, "size_gb"), []

    async def CreateVolume(self, request, context):
        who = auth.identity()
        volume = V.Volume(
            id=str(uuid.uuid4()), name=check_text(request.name, "name"),
            description=check_text(request.description, "description"),
            project_id=who.project_id, user_id=who.user_id, status=VS.VOLUME_STATUS_CREATING,
            metadata=request.metadata)
        validate_metadata(request.metadata)
        if request.size_gb < 0:
            raise errors.InvalidArgument("size_gb", "must be at least 1 (GB)")
        if request.availability_zone not in ("", DEFAULT_ZONE):
            raise errors.InvalidArgument("availability_zone",
                                         f"is not a storage zone (there is one: {DEFAULT_ZONE})")
        volume.availability_zone = DEFAULT_ZONE
        vtype = await self._volume_type(request.volume_type)
        volume.volume_type, volume.backend = vtype.name, vtype.backend
        key = keys.volume(volume.id)
        for _ in range(3):
            size, compares = await self._source(request, who, vtype, volume)
            volume.size_gb = size
            volume.created_at.CopyFrom(now())
            volume.updated_at.CopyFrom(volume.created_at)
            try:
                await quota.apply(self.store, who.project_id, quota.volume_deltas(size),
                                  compares=[self.store.mod_is(key, 0), *compares],
                                  ops=[self.store.put(key, R.VolumeRecord(volume=volume))])
                break
            except ExtraCompareFailed:
                continue   # the source changed meanwhile: check it again
        else:
            raise errors.Unavailable("the volume's source keeps changing; retry")
        _log.info("volume requested", volume_id=volume.id, size_gb=size, backend=vtype.backend)
        return V.CreateVolumeResponse(volume=volume_view(volume, who))

    async def GetVolume(self, request, context):
        who = auth.identity()
        got = await L.get_volume(self.store, request.id, who)
        return V.GetVolumeResponse(volume=volume_view(got.msg.volume, who))

    async def ListVolumes(self, request, context):
        who = auth.identity()
        if request.all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is restricted to admins")
        pagination.page_size_of(request.page_size)
        items, _ = await self.store.list(keys.VOLUMES, R.VolumeRecord)
        found = [v.msg.volume for _, v in items
                 if (request.all_projects or v.msg.volume.project_id == who.project_id)
                 and (not request.name or v.msg.volume.name == request.name)
                 and (not request.status or v.msg.volume.status == request.status)]
        page, token = pagination.paginate(
            found, newest_first, page_size=request.page_size, page_token=request.page_token,
            scope=pagination.query_scope("volumes", who.project_id, request.all_projects,
                                         request.name, request.status), descending=True)
        return V.ListVolumesResponse(volumes=[volume_view(v, who) for v in page],
                                     next_page_token=token)

    async def UpdateVolume(self, request, context):
        who = auth.identity()
        await L.get_volume(self.store, request.id, who)
        name = check_text(request.name, "name") if request.HasField("name") else None
        description = (check_text(request.description, "description")
                       if request.HasField("description") else None)
        if request.update_metadata:
            validate_metadata(request.metadata)

        def step(rec: R.VolumeRecord) -> L.Change:
            if name is not None:
                rec.volume.name = name
            if description is not None:
                rec.volume.description = description
            if request.update_metadata:
                rec.volume.metadata.clear()
                rec.volume.metadata.update(request.metadata)
            L.touch(rec.volume)
            return L.Change(rec)
        rec = await L.transition(self.store, keys.volume(request.id), R.VolumeRecord, step,
                                 not_found=errors.NotFound("volume", request.id))
        return V.UpdateVolumeResponse(volume=volume_view(rec.volume, who))

    async def ExtendVolume(self, request, context):
        who = auth.identity()
        await L.get_volume(self.store, request.id, who)
        check_size(request.new_size_gb, "new_size_gb")

        def step(rec: R.VolumeRecord) -> L.Change:
            L.require_volume_status(rec.volume, L.EXTENDABLE, "extend")
            if request.new_size_gb <= rec.volume.size_gb:
                raise errors.InvalidArgument(
                    "new_size_gb", f"must be larger than the volume's size ({rec.volume.size_gb} GB):"
                    " a volume only grows")
            rec.volume.status = VS.VOLUME_STATUS_EXTENDING
            rec.extend_to_gb = request.new_size_gb
            L.touch(rec.volume)
            return L.Change(rec, rec.volume.project_id,
                            {"gigabytes": request.new_size_gb - rec.volume.size_gb})
        rec = await L.transition(self.store, keys.volume(request.id), R.VolumeRecord, step,
                                 not_found=errors.NotFound("volume", request.id))
        return V.ExtendVolumeResponse(volume=volume_view(rec.volume, who))

    async def DeleteVolume(self, request, context):
        who = auth.identity()
        await L.get_volume(self.store, request.id, who)

        def step(rec: R.VolumeRecord) -> L.Change:
            L.require_volume_status(rec.volume, L.DELETABLE, "delete")
            if rec.volume.attachments:   # e.g. a boot volume that failed: its server holds it
                raise errors.FailedPrecondition(
                    f"cannot delete volume {rec.volume.id}: it is attached to server "
                    f"{rec.volume.attachments[0].server_id}")
            if rec.snapshot_ids:
                raise errors.FailedPrecondition(
                    f"cannot delete volume {rec.volume.id}: it has {len(rec.snapshot_ids)} "
                    "snapshot(s); delete them first")
            rec.volume.status = VS.VOLUME_STATUS_DELETING
            rec.volume.fault = ""
            L.touch(rec.volume)
            return L.Change(rec)
        rec = await L.transition(self.store, keys.volume(request.id), R.VolumeRecord, step,
                                 not_found=errors.NotFound("volume", request.id))
        _log.info("volume delete requested", volume_id=request.id)
        return V.DeleteVolumeResponse(volume=volume_view(rec.volume, who))

    async def WatchVolumes(self, request, context):
        who = auth.identity()
        if request.all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is restricted to admins")

        def match(rec):
            v = rec.volume
            return (not request.id or v.id == request.id) and (
                v.project_id == who.project_id or (who.is_admin and (request.all_projects
                                                                     or request.id)))
        async for kind, v in _stream(self.volumes, match):
            Resp = V.WatchVolumesResponse
            yield Resp(type=kind, volume=volume_view(v.msg.volume, who)) if v else Resp(type=kind)

    # ---- snapshots -------------------------------------------------------------

    async def CreateSnapshot(self, request, context):
        who = auth.identity()
        name = check_text(request.name, "name")
        description = check_text(request.description, "description")
        validate_metadata(request.metadata)
        if not request.volume_id:
            raise errors.InvalidArgument("volume_id", "is required")
        await L.get_volume(self.store, request.volume_id, who)
        snap = V.Snapshot(id=str(uuid.uuid4()), volume_id=request.volume_id, name=name,
                          description=description, user_id=who.user_id,
                          status=SS.SNAPSHOT_STATUS_CREATING, metadata=request.metadata)
        skey = keys.snapshot(snap.id)

        def step(rec: R.VolumeRecord) -> L.Change:
            volume = rec.volume
            if volume.status == VS.VOLUME_STATUS_IN_USE and not request.force:
                raise errors.FailedPrecondition(
                    f"volume {volume.id} is in-use: a snapshot of an attached volume needs force")
            L.require_volume_status(volume, L.SNAPSHOTTABLE_FORCED if request.force
                                    else L.SNAPSHOTTABLE, "snapshot")
            snap.project_id, snap.size_gb = volume.project_id, volume.size_gb
            snap.created_at.CopyFrom(now())
            snap.updated_at.CopyFrom(snap.created_at)
            rec.snapshot_ids.append(snap.id)
            return L.Change(rec, volume.project_id, L.snapshot_deltas(volume.size_gb),
                            [self.store.mod_is(skey, 0)],
                            [self.store.put(skey, R.SnapshotRecord(snapshot=snap,
                                                                   backend=volume.backend))])
        await L.transition(self.store, keys.volume(request.volume_id), R.VolumeRecord, step,
                           not_found=errors.NotFound("volume", request.volume_id))
        _log.info("snapshot requested", snapshot_id=snap.id, volume_id=snap.volume_id)
        return V.CreateSnapshotResponse(snapshot=snap)

    async def GetSnapshot(self, request, context):
        got = await L.get_snapshot(self.store, request.id, auth.identity())
        return V.GetSnapshotResponse(snapshot=got.msg.snapshot)

    async def ListSnapshots(self, request, context):
        who = auth.identity()
        if request.all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is restricted to admins")
        pagination.page_size_of(request.page_size)
        items, _ = await self.store.list(keys.SNAPSHOTS, R.SnapshotRecord)
        found = [v.msg.snapshot for _, v in items
                 if (request.all_projects or v.msg.snapshot.project_id == who.project_id)
                 and (not request.volume_id or v.msg.snapshot.volume_id == request.volume_id)]
        page, token = pagination.paginate(
            found, newest_first, page_size=request.page_size, page_token=request.page_token,
            scope=pagination.query_scope("snapshots", who.project_id, request.all_projects,
                                         request.volume_id), descending=True)
        return V.ListSnapshotsResponse(snapshots=page, next_page_token=token)

    async def DeleteSnapshot(self, request, context):
        who = auth.identity()
        await L.get_snapshot(self.store, request.id, who)
        cloning = [v.msg.volume.id for v in list(self.volumes.items.values())
                   if v.msg.volume.snapshot_id == request.id
                   and v.msg.volume.status == VS.VOLUME_STATUS_CREATING]
        if cloning:
            raise errors.FailedPrecondition(
                f"cannot delete snapshot {request.id}: volume {cloning[0]} is being created from it")

        def step(rec: R.SnapshotRecord) -> L.Change:
            L.require_snapshot_status(rec.snapshot, L.SNAPSHOT_DELETABLE, "delete")
            rec.snapshot.status = SS.SNAPSHOT_STATUS_DELETING
            rec.snapshot.fault = ""
            rec.snapshot.updated_at.CopyFrom(now())
            return L.Change(rec)
        rec = await L.transition(self.store, keys.snapshot(request.id), R.SnapshotRecord, step,
                                 not_found=errors.NotFound("snapshot", request.id))
        return V.DeleteSnapshotResponse(snapshot=rec.snapshot)

    async def WatchSnapshots(self, request, context):
        who = auth.identity()
        if request.all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is restricted to admins")

        def match(rec):
            s = rec.snapshot
            return (not request.id or s.id == request.id) and (
                s.project_id == who.project_id or (who.is_admin and (request.all_projects
                                                                     or request.id)))
        async for kind, v in _stream(self.snapshots, match):
            Resp = V.WatchSnapshotsResponse
            yield Resp(type=kind, snapshot=v.msg.snapshot) if v else Resp(type=kind)

    # ---- volume types ----------------------------------------------------------

    async def CreateVolumeType(self, request, context):
        auth.require_admin()
        name = check_text(request.name, "name", required=True)
        if "/" in name:
            raise errors.InvalidArgument("name", "must not contain '/'")
        if request.backend not in BACKENDS:
            raise errors.InvalidArgument("backend", f"must be one of {', '.join(BACKENDS)}")
        vtype = V.VolumeType(id=str(uuid.uuid4()), name=name,
                             description=check_text(request.description, "description"),
                             backend=request.backend, created_at=now())
        try:
            await self.store.create(keys.volume_type(name), vtype)
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"volume type {name!r} exists") from None
        vtype.is_default = name == self.default_volume_type
        return V.CreateVolumeTypeResponse(volume_type=vtype)

    async def ListVolumeTypes(self, request, context):
        items, _ = await self.store.list(keys.VOLUME_TYPES, V.VolumeType)
        types, token = pagination.page_of(request, [v.msg for _, v in items], lambda t: [t.name])
        for t in types:
            t.is_default = t.name == self.default_volume_type
        return V.ListVolumeTypesResponse(volume_types=types, next_page_token=token)


async def _stream(informer: Informer, match):
    """(event type, record) for a Watch*: current records, SYNCED, changes.
    The event types are the same numbers in every Watch*Response."""
    await informer.synced.wait()
    sub = informer.subscribe(match)
    try:
        while True:
            kind, v = await sub.queue.get()
            if kind == OVERFLOW:
                raise errors.Unavailable("the watch fell too far behind; watch again")
            if kind == SYNCED:
                yield V.WatchVolumesResponse.EVENT_TYPE_SYNCED, None
            else:
                yield (V.WatchVolumesResponse.EVENT_TYPE_DELETED if kind == DELETED
                       else V.WatchVolumesResponse.EVENT_TYPE_UPSERT), v
    finally:
        sub.close()
