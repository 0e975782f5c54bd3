"""AttachVolume, DetachVolume, ListVolumeAttachments on ComputeService
(Nova's os-volume_attachments).

The API writes; the volume manager and the server's host do the rest:

    AttachVolume   volume available -> attaching + a VolumeAttachment, and the
                   server gets an InstanceVolume (ATTACHING), in ONE transaction
                   comparing both records: of two attaches of one volume,
                   exactly one wins
    volume manager writes the connection into the InstanceVolume
    the host       sees it on its assignment stream, adds the disk, and
                   reports (CompleteVolumeAttachment): in-use / ATTACHED
    DetachVolume   in-use -> detaching, InstanceVolume DETACHING (one txn)
    the host       removes the disk and reports: available, attachment gone

A server's delete leaves its attachments to the volume manager, which
detaches volumes whose server is gone (deleting those marked
delete_on_termination). A server or volume of another project is NOT_FOUND.
"""

from __future__ import annotations

import re
import uuid

from nimbus import errors, log, quota, states
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.rpc import auth
from nimbus.services.volume import lifecycle as L
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.store import now
from nimbus.virt.driver import disk_mapping
from nimbus.volume.v1 import volume_pb2 as V

_log = log.get("nimbus.compute.volumes")
IV = R.InstanceVolume
DEVICE = re.compile(r"(?:/dev/)?(vd[b-z])")
ATTACHABLE_VM_STATES = (C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED)


def used_devices(rec: R.InstanceRecord) -> set[str]:
    """The guest devices the server's own disks and its volumes take."""
    flavor = rec.server.flavor
    taken = {dev for dev, _, _ in disk_mapping(flavor, False).values()}
    return taken | {v.device for v in rec.volumes}


def pick_device(rec: R.InstanceRecord, wanted: str) -> str:
    taken = used_devices(rec)
    if wanted:
        match = DEVICE.fullmatch(wanted)
        if not match:
            raise errors.InvalidArgument("device", "must be a virtio disk name, vdb to vdz")
        if match.group(1) in taken:
            raise errors.InvalidArgument("device", f"{match.group(1)} is already in use on the server")
        return match.group(1)
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in taken:
            return f"vd{letter}"
    raise errors.FailedPrecondition(f"server {rec.server.id} has no free device name left")


def attachment_of(rec: R.InstanceRecord, iv: R.InstanceVolume) -> V.VolumeAttachment:
    return V.VolumeAttachment(id=iv.attachment_id, volume_id=iv.volume_id,
                              server_id=rec.server.id, device=iv.device, host=rec.server.host,
                              delete_on_termination=iv.delete_on_termination)


class VolumeAttachments:
    """A mixin of ComputeServicer (needs self.store and self._server)."""

    async def _both(self, request, who):
        if not request.server_id:
            raise errors.InvalidArgument("server_id", "is required")
        if not request.volume_id:
            raise errors.InvalidArgument("volume_id", "is required")
        inst = await self._server(request.server_id, who)
        if inst.msg.server.project_id != who.project_id and not who.is_admin:
            raise errors.NotFound("server", request.server_id)
        vol = await L.get_volume(self.store, request.volume_id, who)
        if vol.msg.volume.project_id != inst.msg.server.project_id:
            raise errors.NotFound("volume", request.volume_id)
        return inst, vol

    async def _commit(self, inst, vol) -> bool:
        ikey, vkey = keys.instance(inst.msg.server.id), keys.volume(vol.msg.volume.id)
        resp = await self.store.txn(
            [self.store.mod_is(ikey, inst.mod_revision), self.store.mod_is(vkey, vol.mod_revision)],
            [self.store.put(ikey, inst.msg), self.store.put(vkey, vol.msg)])
        return resp.succeeded

    async def AttachVolume(self, request, context):
        who = auth.identity()
        for _ in range(quota.ATTEMPTS):
            inst, vol = await self._both(request, who)
            server, volume = inst.msg.server, vol.msg.volume
            if server.vm_state not in ATTACHABLE_VM_STATES or server.task_state:
                raise errors.InvalidState("attach_volume", server.id,
                                          states.vm_state_name(server.vm_state),
                                          states.task_state_name(server.task_state))
            L.require_volume_status(volume, (L.VS.VOLUME_STATUS_AVAILABLE,), "attach")
            device = pick_device(inst.msg, request.device)
            attachment = V.VolumeAttachment(
                id=str(uuid.uuid4()), volume_id=volume.id, server_id=server.id, device=device,
                host=server.host, attached_at=now(),
                delete_on_termination=request.delete_on_termination)
            volume.status = L.VS.VOLUME_STATUS_ATTACHING
            volume.attachments.append(attachment)
            L.touch(volume)
            inst.msg.volumes.append(IV(volume_id=volume.id, attachment_id=attachment.id,
                                       device=device, state=IV.STATE_ATTACHING,
                                       delete_on_termination=request.delete_on_termination))
            if await self._commit(inst, vol):
                _log.info("volume attach requested", server_id=server.id, volume_id=volume.id,
                          device=device)
                return C.AttachVolumeResponse(attachment=attachment)
        raise errors.Unavailable("the server or the volume keeps changing; retry")

    async def DetachVolume(self, request, context):
        who = auth.identity()
        for _ in range(quota.ATTEMPTS):
            inst, vol = await self._both(request, who)
            server, volume = inst.msg.server, vol.msg.volume
            mine = next((iv for iv in inst.msg.volumes if iv.volume_id == volume.id), None)
            if mine is None:
                raise errors.FailedPrecondition(
                    f"volume {volume.id} is not attached to server {server.id}")
            if server.task_state:
                raise errors.InvalidState("detach_volume", server.id,
                                          states.vm_state_name(server.vm_state),
                                          states.task_state_name(server.task_state))
            L.require_volume_status(volume, (L.VS.VOLUME_STATUS_IN_USE,), "detach")
            volume.status = L.VS.VOLUME_STATUS_DETACHING
            L.touch(volume)
            mine.state = IV.STATE_DETACHING
            if await self._commit(inst, vol):
                _log.info("volume detach requested", server_id=server.id, volume_id=volume.id)
                return C.DetachVolumeResponse()
        raise errors.Unavailable("the server or the volume keeps changing; retry")

    async def ListVolumeAttachments(self, request, context):
        who = auth.identity()
        if not request.server_id:
            raise errors.InvalidArgument("server_id", "is required")
        inst = await self._server(request.server_id, who)
        if inst.msg.server.project_id != who.project_id and not who.is_admin:
            raise errors.NotFound("server", request.server_id)
        return C.ListVolumeAttachmentsResponse(attachments=sorted(
            (attachment_of(inst.msg, iv) for iv in inst.msg.volumes), key=lambda a: a.device))
