"""Ec2Service: EC2's RunInstances onto the CreateServer path.

EC2 ids are `<prefix>-xxxxxxxx` (8 hex digits, as Nova's EC2 API made
them). A mapping is made the first time a UUID is shown as an EC2 id and
stored both ways in one transaction (create-if-absent on both keys, so two
callers never give one UUID two ids or one id two UUIDs)."""

from __future__ import annotations

import secrets

from nimbus import errors
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import ec2_pb2 as E
from nimbus.compute.v1 import ec2_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.compute.handlers import ComputeServicer
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store
from nimbus.volume.v1 import volume_pb2 as V

VS, SS = V.VolumeStatus, V.SnapshotStatus
# Cinder's statuses as EC2 names them (DescribeVolumes, DescribeSnapshots).
EC2_VOLUME_STATES = {VS.VOLUME_STATUS_CREATING: "creating", VS.VOLUME_STATUS_AVAILABLE: "available",
                     VS.VOLUME_STATUS_ATTACHING: "in-use", VS.VOLUME_STATUS_IN_USE: "in-use",
                     VS.VOLUME_STATUS_DETACHING: "in-use", VS.VOLUME_STATUS_EXTENDING: "available",
                     VS.VOLUME_STATUS_DELETING: "deleting"}
EC2_SNAPSHOT_STATES = {SS.SNAPSHOT_STATUS_CREATING: "pending", SS.SNAPSHOT_STATUS_AVAILABLE: "completed",
                       SS.SNAPSHOT_STATUS_DELETING: "completed"}
EC2_ATTACH_STATES = {VS.VOLUME_STATUS_ATTACHING: "attaching", VS.VOLUME_STATUS_DETACHING: "detaching"}

IMAGE_PREFIX = {"aki": "aki", "ari": "ari"}    # by disk format; everything else is ami
EC2_STATES = {C.VM_STATE_BUILDING: "pending", C.VM_STATE_ACTIVE: "running",
              C.VM_STATE_STOPPED: "stopped", C.VM_STATE_DELETED: "terminated",
              C.VM_STATE_ERROR: "error"}
# CreateServer field -> the EC2 parameter a user wrote.
EC2_FIELDS = {"flavor_ref": "instance_type", "image_ref": "image_id", "min_count": "min_count",
              "max_count": "max_count", "key_name": "key_name", "user_data": "user_data",
              "availability_zone": "placement.availability_zone", "kernel_id": "kernel_id",
              "ramdisk_id": "ramdisk_id", "block_device_mapping": "block_device_mapping"}


class Ec2Ids:
    def __init__(self, store: Store):
        self.store = store

    async def ec2_id(self, uuid: str, prefix: str) -> str:
        """The EC2 id of a UUID, made on first use."""
        while True:
            found = await self.store.get(keys.ec2_uuid(uuid), records_pb2.Ec2Id)
            if found is not None:
                return found.msg.ec2_id
            candidate = f"{prefix}-{secrets.randbits(32):08x}"
            mapping = records_pb2.Ec2Id(ec2_id=candidate, uuid=uuid)
            resp = await self.store.txn(
                [self.store.mod_is(keys.ec2_uuid(uuid), 0),
                 self.store.mod_is(keys.ec2_id(candidate), 0)],
                [self.store.put(keys.ec2_uuid(uuid), mapping),
                 self.store.put(keys.ec2_id(candidate), mapping)])
            if resp.succeeded:
                return candidate
            # Lost a race for this UUID, or the random id was taken: look again.

    async def uuid(self, ec2_id: str, field: str, prefixes: tuple[str, ...]) -> str:
        """The UUID behind an EC2 id: INVALID_ARGUMENT when malformed,
        NOT_FOUND when no such id was ever handed out."""
        prefix, _, digits = ec2_id.partition("-")
        if prefix not in prefixes or len(digits) != 8 or not all(c in "0123456789abcdef" for c in digits):
            raise errors.InvalidArgument(field, f"{ec2_id!r} is not an EC2 id ({'/'.join(p + '-xxxxxxxx' for p in prefixes)})")
        found = await self.store.get(keys.ec2_id(ec2_id), records_pb2.Ec2Id)
        if found is None:
            raise errors.NotFound({"ami": "image", "aki": "image", "ari": "image", "snap": "snapshot",
                                   "vol": "volume", "i": "server"}[prefix], ec2_id)
        return found.msg.uuid


async def block_device_mapping(ids: Ec2Ids, entries) -> list[C.BlockDeviceMappingLegacy]:
    """EC2 BlockDeviceMapping -> Nova's legacy (v1) syntax, which the create
    path parses and checks like any other."""
    out = []
    for i, entry in enumerate(entries):
        field = f"block_device_mapping[{i}]"
        legacy = C.BlockDeviceMappingLegacy(device_name=entry.device_name)
        if entry.no_device:
            legacy.no_device = True
        elif entry.HasField("ebs"):
            ebs = entry.ebs
            if bool(ebs.snapshot_id) == bool(ebs.volume_id):
                raise errors.InvalidArgument(f"{field}.ebs", "needs exactly one of snapshot_id, volume_id")
            if ebs.volume_size < 0:
                raise errors.InvalidArgument(f"{field}.ebs.volume_size", "must be positive")
            if ebs.snapshot_id:
                legacy.snapshot_id = await ids.uuid(ebs.snapshot_id, f"{field}.ebs.snapshot_id", ("snap",))
            else:
                legacy.volume_id = await ids.uuid(ebs.volume_id, f"{field}.ebs.volume_id", ("vol",))
            legacy.volume_size = ebs.volume_size
            delete = ebs.delete_on_termination if ebs.HasField("delete_on_termination") else True
            legacy.delete_on_termination = "true" if delete else "false"
        elif entry.virtual_name:
            legacy.virtual_name = entry.virtual_name
        else:
            raise errors.InvalidArgument(field, "needs ebs, virtual_name or no_device")
        out.append(legacy)
    return out


class Ec2Servicer(ec2_pb2_grpc.Ec2ServiceServicer):
    def __init__(self, store: Store, compute: ComputeServicer):
        self.store = store
        self.ids = Ec2Ids(store)
        self.compute = compute

    async def RunInstances(self, request, context):
        who = auth.identity()
        try:
            create = await self._to_create(request, who)
            resp = await self.compute.create_servers(create, who)
        except errors.InvalidArgument as exc:
            if exc.field.split("[")[0].split(".")[0] in EC2_FIELDS:
                head = exc.field.split(".")[0].split("[")[0]
                raise errors.InvalidArgument(EC2_FIELDS[head] + exc.field[len(head):],
                                             exc.description) from None
            raise
        out = E.RunInstancesResponse(reservation_id=resp.reservation_id, owner_id=who.project_id)
        for server in resp.servers:
            out.instances.add(instance_id=await self.ids.ec2_id(server.id, "i"), uuid=server.id,
                              image_id=request.image_id, instance_type=request.instance_type,
                              state=EC2_STATES.get(server.vm_state, "pending"),
                              ami_launch_index=server.launch_index)
        return out

    async def _to_create(self, request, who) -> C.CreateServerRequest:
        if not request.image_id:
            raise errors.InvalidArgument("image_id", "is required")
        image_uuid = await self.ids.uuid(request.image_id, "image_id", ("ami",))
        image = (await self.compute.catalog.image(image_uuid, "image_id", who)).image
        if image.status != C.IMAGE_STATUS_ACTIVE:
            raise errors.InvalidArgument("image_id", f"{request.image_id} is not available")
        create = C.CreateServerRequest(
            name=request.image_id, image_ref=image_uuid, flavor_ref=request.instance_type,
            min_count=request.min_count or 1, max_count=request.max_count or request.min_count or 1,
            key_name=request.key_name, user_data=request.user_data,
            security_groups=request.security_group,
            availability_zone=request.placement.availability_zone)
        if request.kernel_id:
            create.kernel_id = await self.ids.uuid(request.kernel_id, "kernel_id", ("aki",))
        if request.ramdisk_id:
            create.ramdisk_id = await self.ids.uuid(request.ramdisk_id, "ramdisk_id", ("ari",))
        create.block_device_mapping.extend(await block_device_mapping(self.ids, request.block_device_mapping))
        if not request.instance_type:
            raise errors.InvalidArgument("instance_type", "is required")
        return create

    async def DescribeImages(self, request, context):
        listed = await self.compute.ListImages(C.ListImagesRequest(), context)
        out = E.DescribeImagesResponse()
        for image in listed.images:
            prefix = IMAGE_PREFIX.get(image.disk_format, "ami")
            out.images.add(image_id=await self.ids.ec2_id(image.id, prefix), uuid=image.id,
                           name=image.name,
                           state="available" if image.status == C.IMAGE_STATUS_ACTIVE else "pending")
        return out

    async def DescribeVolumes(self, request, context):
        who = auth.identity()
        items, _ = await self.store.list(keys.VOLUMES, records_pb2.VolumeRecord)
        out = E.DescribeVolumesResponse()
        for v in sorted((v.msg.volume for _, v in items if v.msg.volume.project_id == who.project_id),
                        key=lambda v: (v.created_at.ToNanoseconds(), v.id)):
            vol = out.volumes.add(
                volume_id=await self.ids.ec2_id(v.id, "vol"), uuid=v.id, size=v.size_gb,
                availability_zone=v.availability_zone,
                status=EC2_VOLUME_STATES.get(v.status, "error"),
                snapshot_id=await self.ids.ec2_id(v.snapshot_id, "snap") if v.snapshot_id else "")
            for a in v.attachments:
                vol.attachments.add(instance_id=await self.ids.ec2_id(a.server_id, "i"),
                                    device=f"/dev/{a.device}",
                                    status=EC2_ATTACH_STATES.get(v.status, "attached"),
                                    delete_on_termination=a.delete_on_termination)
        return out

    async def DescribeSnapshots(self, request, context):
        who = auth.identity()
        items, _ = await self.store.list(keys.SNAPSHOTS, records_pb2.SnapshotRecord)
        out = E.DescribeSnapshotsResponse()
        for s in sorted((v.msg.snapshot for _, v in items
                         if v.msg.snapshot.project_id == who.project_id),
                        key=lambda s: (s.created_at.ToNanoseconds(), s.id)):
            out.snapshots.add(snapshot_id=await self.ids.ec2_id(s.id, "snap"), uuid=s.id,
                              volume_id=await self.ids.ec2_id(s.volume_id, "vol"),
                              volume_size=s.size_gb, status=EC2_SNAPSHOT_STATES.get(s.status, "error"))
        return out
