"""Boot from volume and volumes at boot (block_device_mapping_v2 with a
volume destination), end to end on the file backend: the create reserves or
plans the volumes with the servers' quota, the volume manager makes them,
the host waits for their connections and boots with the volume as vda; a
delete detaches them and deletes those marked delete_on_termination."""

import os
import uuid

import grpc
import pytest

from nimbus.compute.v1 import quotas_pb2, quotas_pb2_grpc
from nimbus.imagebackend import qemu_img
from nimbus.volume.v1 import volume_pb2 as V
from stack import ADMIN, C, Stack, expect, user
from test_volumes import VS, create, volume_file, wait_gone, wait_snapshot, wait_status

Code = grpc.StatusCode
SS = V.SnapshotStatus
B = C.BlockDeviceMapping


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("bstack")), hosts=1,
                     volume_manager=True) as s:
        await s.flavor("m1.tiny")
        await s.flavor("m1.novol", disk_gb=0)   # root_gb 0: only for volume-backed servers
        s.cirros = await s.image(qcow2_image)
        yield s


def domain_disks(stack, server_id: str) -> dict:
    agent = stack.agents.agents[0]
    return agent.driver.disk_targets(server_id)


async def server_volumes(stack, me, server_id: str) -> dict:
    listed = (await stack.api.ListVolumeAttachments(C.ListVolumeAttachmentsRequest(
        server_id=server_id), metadata=me)).attachments
    return {a.device: a.volume_id for a in listed}


async def boot(stack, me, bdms, image_ref="", flavor="m1.novol", **kw) -> C.Server:
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="bfv", image_ref=image_ref, flavor_ref=flavor, block_device_mapping_v2=bdms, **kw),
        metadata=me)).servers[0]
    return await stack.wait_settled(server.id)


async def test_boot_from_image_to_volume_with_a_blank_data_volume(stack):
    me = user("uma", f"bfv-{uuid.uuid4().hex[:6]}")
    server = await boot(stack, me, [
        B(source_type="image", destination_type="volume", uuid=stack.cirros.id, boot_index=0,
          has_boot_index=True, volume_size=1, delete_on_termination=True),
        B(source_type="blank", destination_type="volume", volume_size=2)])
    assert server.vm_state == C.VM_STATE_ACTIVE, server.fault
    attached = await server_volumes(stack, me, server.id)
    assert set(attached) == {"vda", "vdb"}
    root, data = attached["vda"], attached["vdb"]
    for vid in (root, data):
        await wait_status(stack, vid, VS.VOLUME_STATUS_IN_USE)
    disks = domain_disks(stack, server.id)
    assert disks["vda"] == volume_file(stack, root) and disks["vdb"] == volume_file(stack, data)
    info = await qemu_img.info(volume_file(stack, root))
    assert info["format"] == "raw" and info["virtual-size"] == 1 << 30
    rootvol = (await stack.volumes.GetVolume(V.GetVolumeRequest(id=root), metadata=me)).volume
    assert rootvol.bootable and rootvol.image_id == stack.cirros.id
    quotas = quotas_pb2_grpc.QuotaServiceStub(stack.channel)
    usage = (await quotas.GetQuotaUsage(quotas_pb2.GetQuotaUsageRequest(), metadata=me)).usage
    assert (usage.volumes.in_use, usage.gigabytes.in_use, usage.instances.in_use) == (2, 3, 1)

    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    assert await stack.wait_for(server.id, lambda s: s is None) is None
    await wait_gone(stack, root)                                  # delete_on_termination
    kept = await wait_status(stack, data, VS.VOLUME_STATUS_AVAILABLE)
    assert not kept.attachments and not os.path.exists(volume_file(stack, root))


async def test_boot_from_an_existing_volume_and_from_a_snapshot(stack):
    me = user("vic", f"bfv-{uuid.uuid4().hex[:6]}")
    made = await create(stack, me, size_gb=1, image_ref="cirros")
    made = await wait_status(stack, made.id, VS.VOLUME_STATUS_AVAILABLE)
    snap = (await stack.volumes.CreateSnapshot(V.CreateSnapshotRequest(volume_id=made.id),
                                               metadata=me)).snapshot
    await wait_snapshot(stack, snap.id, lambda s: s is not None and s.status == SS.SNAPSHOT_STATUS_AVAILABLE)

    from_volume = await boot(stack, me, [B(source_type="volume", destination_type="volume",
                                           uuid=made.id, boot_index=0, has_boot_index=True)])
    assert from_volume.vm_state == C.VM_STATE_ACTIVE and from_volume.image_ref == ""
    assert domain_disks(stack, from_volume.id)["vda"] == volume_file(stack, made.id)
    await wait_status(stack, made.id, VS.VOLUME_STATUS_IN_USE)

    from_snap = await boot(stack, me, [B(source_type="snapshot", destination_type="volume",
                                         uuid=snap.id, boot_index=0, has_boot_index=True,
                                         volume_size=2)])
    assert from_snap.vm_state == C.VM_STATE_ACTIVE
    root = (await server_volumes(stack, me, from_snap.id))["vda"]
    got = await wait_status(stack, root, VS.VOLUME_STATUS_IN_USE)
    assert got.snapshot_id == snap.id and got.size_gb == 2

    # A volume in use cannot boot another server; nothing is left of the try.
    await expect(stack.api.CreateServer(C.CreateServerRequest(
        name="x", flavor_ref="m1.novol", block_device_mapping_v2=[B(
            source_type="volume", destination_type="volume", uuid=made.id, boot_index=0,
            has_boot_index=True)]), metadata=me), Code.FAILED_PRECONDITION)

    for server in (from_volume, from_snap):
        await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
        assert await stack.wait_for(server.id, lambda s: s is None) is None
    # delete_on_termination false (Nova's default): both stay, detached.
    for vid in (made.id, root):
        await wait_status(stack, vid, VS.VOLUME_STATUS_AVAILABLE)


@pytest.mark.parametrize("bdm,code,field", [
    (B(source_type="volume", destination_type="volume", uuid=str(uuid.uuid4()), boot_index=0,
       has_boot_index=True), Code.NOT_FOUND, "volume"),
    (B(source_type="snapshot", destination_type="volume", uuid=str(uuid.uuid4()), boot_index=0,
       has_boot_index=True), Code.NOT_FOUND, "snapshot"),
    (B(source_type="image", destination_type="volume", uuid=str(uuid.uuid4()), boot_index=0,
       has_boot_index=True, volume_size=1), Code.NOT_FOUND, "image"),
    (B(source_type="blank", destination_type="volume", boot_index=0, has_boot_index=True),
     Code.INVALID_ARGUMENT, "block_device_mapping_v2[0].volume_size"),
])
async def test_bad_boot_mappings(stack, bdm, code, field):
    me = user("wes", f"bfv-{uuid.uuid4().hex[:6]}")
    await expect(stack.api.CreateServer(C.CreateServerRequest(
        name="x", flavor_ref="m1.novol", block_device_mapping_v2=[bdm]), metadata=me), code, field)
    listed = await stack.api.ListServers(C.ListServersRequest(), metadata=me)
    volumes = await stack.volumes.ListVolumes(V.ListVolumesRequest(), metadata=me)
    assert not listed.servers and not volumes.volumes


async def test_volumes_over_quota_refuse_the_boot(stack):
    project = f"bfv-{uuid.uuid4().hex[:6]}"
    quotas = quotas_pb2_grpc.QuotaServiceStub(stack.channel)
    await quotas.UpdateQuotas(quotas_pb2.UpdateQuotasRequest(
        project_id=project, quota_set=quotas_pb2.QuotaSet(gigabytes=3)), metadata=ADMIN)
    me = user("xia", project)
    await expect(stack.api.CreateServer(C.CreateServerRequest(
        name="x", flavor_ref="m1.novol", block_device_mapping_v2=[B(
            source_type="image", destination_type="volume", uuid=stack.cirros.id, boot_index=0,
            has_boot_index=True, volume_size=4)]), metadata=me), Code.RESOURCE_EXHAUSTED)
    assert not (await stack.volumes.ListVolumes(V.ListVolumesRequest(), metadata=me)).volumes


async def test_an_image_copied_to_a_boot_volume_can_be_deleted(stack, qcow2_image):
    """The server's root is the volume (a copy): DeleteImage does not wait
    for the server, as it does for servers whose root is an overlay on it."""
    me = user("una", f"bfv-{uuid.uuid4().hex[:6]}")
    spare = await stack.image(qcow2_image, name=f"spare-{uuid.uuid4().hex[:6]}")
    server = await boot(stack, me, [
        B(source_type="image", destination_type="volume", uuid=spare.id, boot_index=0,
          has_boot_index=True, volume_size=1, delete_on_termination=True)])
    assert server.vm_state == C.VM_STATE_ACTIVE, server.fault
    await stack.api.DeleteImage(C.DeleteImageRequest(ref=spare.id), metadata=ADMIN)
    await expect(stack.api.GetImage(C.GetImageRequest(ref=spare.id), metadata=ADMIN),
                 grpc.StatusCode.NOT_FOUND, "image")
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    assert await stack.wait_for(server.id, lambda s: s is None) is None
