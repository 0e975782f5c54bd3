"""Block-device mappings whose destination is a volume (Nova's
_prep_block_device, with Cinder): boot from volume and volumes at boot.

The create checks every such mapping and plans, per server:

    source volume    that AVAILABLE volume of the project is reserved
                     (ATTACHING, attached to the server) in the create's own
                     transaction, compared on its mod_revision; one server only
    source snapshot  a new volume from the snapshot (its size unless
                     volume_size)
    source image     a new volume from the image (volume_size, else the
                     image's min_disk, at least 1 GB)
    source blank     a new empty volume of volume_size

New volumes are written CREATING, already attached to their server, and
charged to the project's volumes/gigabytes quota with its servers (the
admission's per-server deltas); the volume manager creates them, moves
them to attaching and writes their connections into the server's
InstanceVolumes; the host's build waits for those (BLOCK_DEVICE_MAPPING),
boots from the volume at vda (boot_index 0) and attaches the others.
"""

from __future__ import annotations

import dataclasses
import uuid

from nimbus import errors, quota
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.services.volume import lifecycle as L
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.store import Store, Versioned, now
from nimbus.volume.v1 import volume_pb2 as V
from nimbus.volumebackend import GIB

IV = R.InstanceVolume
LETTERS = "bcdefghijklmnopqrstuvwxyz"


@dataclasses.dataclass
class Planned:
    """One mapping with a volume destination, checked."""
    field: str
    device: str
    delete_on_termination: bool
    size_gb: int
    existing: Versioned | None = None        # source volume: its record as read
    snapshot_id: str = ""
    image_id: str = ""


@dataclasses.dataclass
class BootVolumes:
    planned: list[Planned]
    volume_type: V.VolumeType | None

    @property
    def per_server(self) -> dict[str, int]:
        new = [p for p in self.planned if p.existing is None]
        return quota.volume_deltas(sum(p.size_gb for p in new), 1) | {"volumes": len(new)} \
            if new else {}

    def compares(self, store: Store) -> list:
        return [store.mod_is(keys.volume(p.existing.msg.volume.id), p.existing.mod_revision)
                for p in self.planned if p.existing is not None]

    def ops(self, store: Store, record: R.InstanceRecord) -> list:
        """The volume records of one server, its InstanceVolumes added to `record`."""
        server, ops, created = record.server, [], now()
        for p in self.planned:
            if p.existing is not None:
                rec = R.VolumeRecord()
                rec.CopyFrom(p.existing.msg)
            else:
                rec = R.VolumeRecord(volume=V.Volume(
                    id=str(uuid.uuid4()), name=f"{server.name}-{p.device}",
                    project_id=server.project_id, user_id=server.user_id, size_gb=p.size_gb,
                    status=V.VOLUME_STATUS_CREATING, volume_type=self.volume_type.name,
                    backend=self.volume_type.backend, availability_zone="nova",
                    snapshot_id=p.snapshot_id, image_id=p.image_id, bootable=bool(p.image_id),
                    created_at=created))
            volume = rec.volume
            if p.existing is not None:
                volume.status = V.VOLUME_STATUS_ATTACHING
            volume.updated_at.CopyFrom(created)
            attachment = volume.attachments.add(
                id=str(uuid.uuid4()), volume_id=volume.id, server_id=server.id, device=p.device,
                attached_at=created, delete_on_termination=p.delete_on_termination)
            record.volumes.add(volume_id=volume.id, attachment_id=attachment.id, device=p.device,
                               state=IV.STATE_ATTACHING,
                               delete_on_termination=p.delete_on_termination)
            ops.append(store.put(keys.volume(volume.id), rec))
        return ops


def _device(bdm: C.BlockDeviceMapping, taken: set[str], field: str) -> str:
    if bdm.has_boot_index and bdm.boot_index == 0:
        return "vda"
    name = bdm.device_name.removeprefix("/dev/")
    if name:
        if name in taken or not (len(name) == 3 and name.startswith("vd") and name[2] in LETTERS):
            raise errors.InvalidArgument(f"{field}.device_name", f"{bdm.device_name!r} is taken "
                                         "or not a virtio disk name (vdb to vdz)")
        return name
    return next(f"vd{c}" for c in LETTERS if f"vd{c}" not in taken)


async def plan(store: Store, catalog, block_devices, who, max_count: int,
               default_volume_type: str, flavor: C.Flavor) -> BootVolumes | None:
    """Check the mappings with a volume destination; None when there are none."""
    wanted = [(i, b) for i, b in enumerate(block_devices) if not b.no_device and (
        b.destination_type == "volume" or b.source_type in ("volume", "snapshot"))]
    if not wanted:
        return None
    taken = {"vda"} | ({"vdb"} if flavor.ephemeral_gb else set())
    taken |= {b.device_name.removeprefix("/dev/") for _, b in wanted
              if b.device_name and not (b.has_boot_index and b.boot_index == 0)}
    planned, vtype = [], None
    for i, bdm in wanted:
        field = f"block_device_mapping_v2[{i}]"
        explicit = bdm.device_name.removeprefix("/dev/")
        device = _device(bdm, taken - {explicit}, field)
        taken.add(device)
        p = Planned(field, device, bdm.delete_on_termination, bdm.volume_size)
        if bdm.source_type == "volume":
            if max_count > 1:
                raise errors.InvalidArgument("max_count", "a volume can be attached to one server only")
            got = await L.get_volume(store, bdm.uuid, who)
            L.require_volume_status(got.msg.volume, (L.VS.VOLUME_STATUS_AVAILABLE,), "attach")
            p.existing, p.size_gb = got, got.msg.volume.size_gb
        else:
            if bdm.source_type == "snapshot":
                snap = await L.get_snapshot(store, bdm.uuid, who)
                L.require_snapshot_status(snap.msg.snapshot, (L.SS.SNAPSHOT_STATUS_AVAILABLE,),
                                          "create a volume from")
                p.snapshot_id, base = snap.msg.snapshot.id, snap.msg.snapshot.size_gb
            elif bdm.source_type == "image":
                image = (await catalog.image(bdm.uuid, f"{field}.uuid", who)).image
                p.image_id = image.id
                base = max(1, image.min_disk_gb,
                           -(-image.size // GIB) if image.disk_format == "raw" else 1)
            else:
                base = 1
            p.size_gb = bdm.volume_size or base
            if p.size_gb < base:
                raise errors.InvalidArgument(f"{field}.volume_size",
                                             f"must be at least {base} (GB), the source's size")
            if vtype is None:
                found = await store.get(keys.volume_type(default_volume_type), V.VolumeType)
                if found is None:
                    raise errors.NotFound("volume_type", default_volume_type)
                vtype = found.msg
            if p.snapshot_id and snap.msg.backend != vtype.backend:
                raise errors.InvalidArgument(f"{field}.uuid", f"snapshot {p.snapshot_id} is on "
                                             f"backend {snap.msg.backend}, the default type's is "
                                             f"{vtype.backend}")
        planned.append(p)
    return BootVolumes(planned, vtype)
