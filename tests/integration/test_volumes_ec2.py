"""EC2's block-device mappings onto volumes: RunInstances with `ebs`
snap-/vol- mappings (ids through the stored EC2 id mapping, as
DescribeSnapshots/DescribeVolumes show them), delete_on_termination
defaulting to true, no_device suppressing a mapping."""

import uuid

import pytest

from nimbus.compute.v1 import ec2_pb2 as E
from nimbus.compute.v1 import ec2_pb2_grpc
from nimbus.volume.v1 import volume_pb2 as V
from stack import C, Stack, user
from test_volumes import VS, create, volume_file, wait_gone, wait_snapshot, wait_status

SS = V.SnapshotStatus
M, Ebs = E.Ec2BlockDeviceMapping, E.Ec2Ebs


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("ec2vol")), hosts=1,
                     volume_manager=True) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.ec2 = ec2_pb2_grpc.Ec2ServiceStub(s.channel)
        yield s


# volume_size 0: not given, the snapshot's size (1 GB).
@pytest.mark.parametrize("delete_on_termination, volume_size", [(None, 2), (False, 0)])
async def test_run_instances_with_snap_and_vol_mappings(stack, delete_on_termination, volume_size):
    me = user("yan", f"ec2-{uuid.uuid4().hex[:6]}")
    source = await create(stack, me, size_gb=1)
    await wait_status(stack, source.id, VS.VOLUME_STATUS_AVAILABLE)
    snap = (await stack.volumes.CreateSnapshot(V.CreateSnapshotRequest(volume_id=source.id),
                                               metadata=me)).snapshot
    await wait_snapshot(stack, snap.id, lambda s: s is not None and s.status == SS.SNAPSHOT_STATUS_AVAILABLE)
    spare = await create(stack, me, size_gb=1)
    await wait_status(stack, spare.id, VS.VOLUME_STATUS_AVAILABLE)

    [ec2_snap] = (await stack.ec2.DescribeSnapshots(E.DescribeSnapshotsRequest(), metadata=me)).snapshots
    assert ec2_snap.snapshot_id.startswith("snap-") and ec2_snap.status == "completed"
    vols = {v.uuid: v for v in (await stack.ec2.DescribeVolumes(
        E.DescribeVolumesRequest(), metadata=me)).volumes}
    assert ec2_snap.volume_id == vols[source.id].volume_id
    assert vols[spare.id].volume_id.startswith("vol-") and vols[spare.id].status == "available"
    ami = next(i.image_id for i in (await stack.ec2.DescribeImages(
        E.DescribeImagesRequest(), metadata=me)).images if i.name == "cirros")

    dot = {} if delete_on_termination is None else {"delete_on_termination": delete_on_termination}
    size = {"volume_size": volume_size} if volume_size else {}
    resp = await stack.ec2.RunInstances(E.RunInstancesRequest(
        image_id=ami, instance_type="m1.tiny", block_device_mapping=[
            M(device_name="/dev/vdb", ebs=Ebs(snapshot_id=ec2_snap.snapshot_id, **size, **dot)),
            M(device_name="/dev/vdc", ebs=Ebs(volume_id=vols[spare.id].volume_id, **dot)),
            M(device_name="/dev/vdd", no_device=True)]), metadata=me)
    [inst] = resp.instances
    server = await stack.wait_settled(inst.uuid)
    assert server.vm_state == C.VM_STATE_ACTIVE, server.fault
    attached = {a.device: a.volume_id for a in (await stack.api.ListVolumeAttachments(
        C.ListVolumeAttachmentsRequest(server_id=inst.uuid), metadata=me)).attachments}
    assert set(attached) == {"vdb", "vdc"} and attached["vdc"] == spare.id
    from_snap = await wait_status(stack, attached["vdb"], VS.VOLUME_STATUS_IN_USE)
    assert from_snap.snapshot_id == snap.id and from_snap.size_gb == (volume_size or 1)
    await wait_status(stack, spare.id, VS.VOLUME_STATUS_IN_USE)
    agent = stack.agents.agents[0]
    disks = agent.driver.disk_targets(inst.uuid)
    assert disks["vdb"] == volume_file(stack, from_snap.id) and "vdd" not in disks

    described = {v.uuid: v for v in (await stack.ec2.DescribeVolumes(
        E.DescribeVolumesRequest(), metadata=me)).volumes}
    [att] = described[spare.id].attachments
    assert (att.instance_id, att.device, att.status) == (inst.instance_id, "/dev/vdc", "attached")
    assert att.delete_on_termination == (delete_on_termination is None)
    assert described[from_snap.id].snapshot_id == ec2_snap.snapshot_id

    await stack.api.DeleteServer(C.DeleteServerRequest(id=inst.uuid), metadata=me)
    assert await stack.wait_for(inst.uuid, lambda s: s is None) is None
    for vid in (from_snap.id, spare.id):
        if delete_on_termination is None:      # EC2's default: true
            await wait_gone(stack, vid)
        else:
            await wait_status(stack, vid, VS.VOLUME_STATUS_AVAILABLE)
