"""A host's report that it added or removed a volume's disk
(CompleteVolumeAttachment): the server's InstanceVolume and the volume move
on together, in one transaction comparing both records. Idempotent: a
report repeated after a lost answer changes nothing."""

from __future__ import annotations

from nimbus import errors, quota
from nimbus.services.volume import lifecycle as L
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.store import Store

IV = R.InstanceVolume
VS = L.VS


async def complete(store: Store, request) -> None:
    ikey, vkey = keys.instance(request.instance_id), keys.volume(request.volume_id)
    for _ in range(quota.ATTEMPTS):
        inst = await store.get(ikey, R.InstanceRecord)
        vol = await store.get(vkey, R.VolumeRecord)
        if inst is None or vol is None:
            return   # gone: the volume manager releases what a deleted server held
        if inst.msg.server.host != request.host:
            raise errors.FailedPrecondition(
                f"server {request.instance_id} is not on host {request.host}")
        ivs = inst.msg.volumes
        mine = next((iv for iv in ivs if iv.volume_id == request.volume_id), None)
        volume = vol.msg.volume
        if request.detached or request.error:
            if mine is None:
                return   # already done
            ivs.remove(mine)
            kept = [a for a in volume.attachments if a.server_id != request.instance_id]
            del volume.attachments[:]
            volume.attachments.extend(kept)
            if volume.status in (VS.VOLUME_STATUS_ATTACHING, VS.VOLUME_STATUS_DETACHING,
                                 VS.VOLUME_STATUS_IN_USE):
                volume.status = VS.VOLUME_STATUS_AVAILABLE
            volume.fault = request.error
        else:
            if mine is None or mine.state == IV.STATE_ATTACHED:
                return
            if mine.state != IV.STATE_ATTACHING or volume.status != VS.VOLUME_STATUS_ATTACHING:
                raise errors.FailedPrecondition(
                    f"volume {request.volume_id} is no longer attaching to {request.instance_id}")
            mine.state = IV.STATE_ATTACHED
            volume.status = VS.VOLUME_STATUS_IN_USE
            volume.fault = ""
        L.touch(volume)
        resp = await store.txn(
            [store.mod_is(ikey, inst.mod_revision), store.mod_is(vkey, vol.mod_revision)],
            [store.put(ikey, inst.msg), store.put(vkey, vol.msg)])
        if resp.succeeded:
            return
    raise errors.Unavailable("the server or the volume keeps changing; retry")
