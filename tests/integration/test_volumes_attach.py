"""AttachVolume / DetachVolume / ListVolumeAttachments on ComputeService,
end to end: the API's transaction, the volume manager's connection, the
host adding the disk to the domain's persistent definition (the libvirt
test driver has no hot-plug) and the conductor's completion; a server's
delete releasing its volumes."""

import asyncio
import os
import uuid

import grpc
import pytest

from nimbus.volume.v1 import volume_pb2 as V
from stack import ADMIN, C, Stack, expect, user
from test_volumes import SS, VS, create, volume_file, wait_gone, wait_snapshot, wait_status

Code = grpc.StatusCode


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("astack")), hosts=2,
                     volume_manager=True) as s:
        await s.flavor("m1.tiny")
        await s.flavor("m1.small", ram_mb=1024)
        await s.image(qcow2_image)
        yield s


async def boot(stack, me, name="srv") -> C.Server:
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name=name, image_ref="cirros", flavor_ref="m1.tiny"), metadata=me)).servers[0]
    server = await stack.wait_settled(server.id)
    assert server.vm_state == C.VM_STATE_ACTIVE
    return server


async def disks(stack, server: C.Server) -> dict:
    """target dev -> source in the domain's persistent definition, and the
    same from the instance dir's libvirt.xml (a restart defines it again)."""
    agent = next(a for a in stack.agents.agents if a.host == server.host)
    defined = await agent.driver._call(agent.driver.disk_targets, server.id)
    with open(os.path.join(agent.driver.instance_dir(server.id), "libvirt.xml")) as f:
        xml = f.read()
    assert all(source in xml for dev, source in defined.items())
    return defined


async def available_volume(stack, me, size=1) -> V.Volume:
    vol = await create(stack, me, size_gb=size)
    return await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)


async def test_attach_detach_on_active_and_stopped(stack):
    me = user("lea", f"att-{uuid.uuid4().hex[:6]}")
    server = await boot(stack, me)
    first, second = await available_volume(stack, me), await available_volume(stack, me, 2)
    att = (await stack.api.AttachVolume(C.AttachVolumeRequest(
        server_id=server.id, volume_id=first.id), metadata=me)).attachment
    assert att.device == "vdb" and att.server_id == server.id
    got = await wait_status(stack, first.id, VS.VOLUME_STATUS_IN_USE)
    assert [(a.server_id, a.device) for a in got.attachments] == [(server.id, "vdb")]
    assert (await disks(stack, server))["vdb"] == volume_file(stack, first.id)

    # Stopped: the next device, in the persistent definition.
    await stack.api.StopServer(C.StopServerRequest(id=server.id), metadata=me)
    await stack.wait_for(server.id, lambda s: s.vm_state == C.VM_STATE_STOPPED and not s.task_state)
    att2 = (await stack.api.AttachVolume(C.AttachVolumeRequest(
        server_id=server.id, volume_id=second.id), metadata=me)).attachment
    assert att2.device == "vdc"
    await wait_status(stack, second.id, VS.VOLUME_STATUS_IN_USE)
    listed = (await stack.api.ListVolumeAttachments(C.ListVolumeAttachmentsRequest(
        server_id=server.id), metadata=me)).attachments
    assert [(a.volume_id, a.device) for a in listed] == [(first.id, "vdb"), (second.id, "vdc")]
    assert {"vdb", "vdc"} <= set(await disks(stack, server))

    await stack.api.DetachVolume(C.DetachVolumeRequest(server_id=server.id, volume_id=first.id),
                                 metadata=me)
    got = await wait_status(stack, first.id, VS.VOLUME_STATUS_AVAILABLE)
    assert not got.attachments
    now = await disks(stack, server)
    assert "vdb" not in now and now["vdc"] == volume_file(stack, second.id)
    # vdb is free again and is given to the next attach.
    att3 = (await stack.api.AttachVolume(C.AttachVolumeRequest(
        server_id=server.id, volume_id=first.id), metadata=me)).attachment
    assert att3.device == "vdb"
    await wait_status(stack, first.id, VS.VOLUME_STATUS_IN_USE)


async def test_two_attaches_of_one_volume_exactly_one_wins(stack):
    me = user("max", f"att-{uuid.uuid4().hex[:6]}")
    a, b = await asyncio.gather(boot(stack, me, "a"), boot(stack, me, "b"))
    vol = await available_volume(stack, me)
    results = await asyncio.gather(
        *(stack.api.AttachVolume(C.AttachVolumeRequest(server_id=s.id, volume_id=vol.id),
                                 metadata=me) for s in (a, b)), return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].code() == Code.FAILED_PRECONDITION
    got = await wait_status(stack, vol.id, VS.VOLUME_STATUS_IN_USE)
    assert [x.server_id for x in got.attachments] == [won[0].attachment.server_id]
    loser = b if won[0].attachment.server_id == a.id else a
    assert (await stack.api.ListVolumeAttachments(C.ListVolumeAttachmentsRequest(
        server_id=loser.id), metadata=me)).attachments == []


async def test_a_forced_snapshot_of_an_in_use_volume(stack):
    """Cinder's --force: the snapshot of an attached volume is taken when asked
    for explicitly (refused without it: the bad-request table below)."""
    me = user("fay", f"att-{uuid.uuid4().hex[:6]}")
    server = await boot(stack, me)
    vol = await available_volume(stack, me)
    await stack.api.AttachVolume(C.AttachVolumeRequest(server_id=server.id, volume_id=vol.id),
                                 metadata=me)
    await wait_status(stack, vol.id, VS.VOLUME_STATUS_IN_USE)
    snap = (await stack.volumes.CreateSnapshot(V.CreateSnapshotRequest(
        volume_id=vol.id, name="hot", force=True), metadata=me)).snapshot
    got = await wait_snapshot(stack, snap.id, lambda s: s is not None and s.status == SS.SNAPSHOT_STATUS_AVAILABLE)
    assert got.size_gb == vol.size_gb
    assert (await stack.volumes.GetVolume(V.GetVolumeRequest(id=vol.id), metadata=me)).volume.status \
        == VS.VOLUME_STATUS_IN_USE
    await stack.volumes.DeleteSnapshot(V.DeleteSnapshotRequest(id=snap.id), metadata=me)


@pytest.fixture(scope="module")
async def refs(stack):
    project = f"att-{uuid.uuid4().hex[:6]}"
    me, them = user("ned", project), user("ola", f"att-{uuid.uuid4().hex[:6]}")
    mine, theirs = await asyncio.gather(boot(stack, me, "mine"), boot(stack, them, "theirs"))
    in_use = await available_volume(stack, me)
    await stack.api.AttachVolume(C.AttachVolumeRequest(server_id=mine.id, volume_id=in_use.id),
                                 metadata=me)
    await wait_status(stack, in_use.id, VS.VOLUME_STATUS_IN_USE)
    free = await available_volume(stack, me)
    their_vol = await available_volume(stack, them)
    return dict(me=me, mine=mine.id, theirs=theirs.id, in_use=in_use.id, free=free.id,
                their_vol=their_vol.id)


A, D = C.AttachVolumeRequest, C.DetachVolumeRequest
BAD = [
    ("attach an in-use volume", "AttachVolume", lambda r: A(server_id=r["mine"], volume_id=r["in_use"]),
     Code.FAILED_PRECONDITION, ""),
    ("another project's volume", "AttachVolume",
     lambda r: A(server_id=r["mine"], volume_id=r["their_vol"]), Code.NOT_FOUND, "volume"),
    ("to another project's server", "AttachVolume",
     lambda r: A(server_id=r["theirs"], volume_id=r["free"]), Code.NOT_FOUND, "server"),
    ("an unknown volume", "AttachVolume", lambda r: A(server_id=r["mine"], volume_id=str(uuid.uuid4())),
     Code.NOT_FOUND, "volume"),
    ("a device in use", "AttachVolume", lambda r: A(server_id=r["mine"], volume_id=r["free"],
                                                    device="vdb"), Code.INVALID_ARGUMENT, "device"),
    ("the root device", "AttachVolume", lambda r: A(server_id=r["mine"], volume_id=r["free"],
                                                    device="vda"), Code.INVALID_ARGUMENT, "device"),
    ("a bad device name", "AttachVolume", lambda r: A(server_id=r["mine"], volume_id=r["free"],
                                                      device="sdb"), Code.INVALID_ARGUMENT, "device"),
    ("no server", "AttachVolume", lambda r: A(volume_id=r["free"]), Code.INVALID_ARGUMENT, "server_id"),
    ("no volume", "AttachVolume", lambda r: A(server_id=r["mine"]), Code.INVALID_ARGUMENT, "volume_id"),
    ("detach one not attached", "DetachVolume", lambda r: D(server_id=r["mine"], volume_id=r["free"]),
     Code.FAILED_PRECONDITION, ""),
    ("detach from another project's server", "DetachVolume",
     lambda r: D(server_id=r["theirs"], volume_id=r["in_use"]), Code.NOT_FOUND, "server"),
    ("delete an in-use volume", "DeleteVolume", lambda r: V.DeleteVolumeRequest(id=r["in_use"]),
     Code.FAILED_PRECONDITION, ""),
    ("extend an in-use volume", "ExtendVolume",
     lambda r: V.ExtendVolumeRequest(id=r["in_use"], new_size_gb=5), Code.FAILED_PRECONDITION, ""),
    ("snapshot an in-use volume without force", "CreateSnapshot",
     lambda r: V.CreateSnapshotRequest(volume_id=r["in_use"]), Code.FAILED_PRECONDITION, ""),
    ("resize a server with volumes", "ResizeServer",
     lambda r: C.ResizeServerRequest(id=r["mine"], flavor_ref="m1.small"), Code.FAILED_PRECONDITION, ""),
]


@pytest.mark.parametrize("case,method,build,code,field", BAD, ids=[b[0] for b in BAD])
async def test_bad_attach_requests(stack, refs, case, method, build, code, field):
    service = stack.volumes if method in ("DeleteVolume", "ExtendVolume", "CreateSnapshot") else stack.api
    await expect(getattr(service, method)(build(refs), metadata=refs["me"]), code, field)
    # Nothing changed: the in-use volume on its server, the free one free.
    listed = (await stack.api.ListVolumeAttachments(C.ListVolumeAttachmentsRequest(
        server_id=refs["mine"]), metadata=refs["me"])).attachments
    assert [(a.volume_id, a.device) for a in listed] == [(refs["in_use"], "vdb")]
    for vid, status in ((refs["in_use"], VS.VOLUME_STATUS_IN_USE),
                        (refs["free"], VS.VOLUME_STATUS_AVAILABLE)):
        got = (await stack.volumes.GetVolume(V.GetVolumeRequest(id=vid), metadata=refs["me"])).volume
        assert got.status == status


async def test_server_delete_detaches_and_deletes_as_asked(stack):
    me = user("pia", f"att-{uuid.uuid4().hex[:6]}")
    server = await boot(stack, me)
    kept, doomed = await available_volume(stack, me), await available_volume(stack, me)
    for vol, dot in ((kept, False), (doomed, True)):
        await stack.api.AttachVolume(C.AttachVolumeRequest(
            server_id=server.id, volume_id=vol.id, delete_on_termination=dot), metadata=me)
        await wait_status(stack, vol.id, VS.VOLUME_STATUS_IN_USE)
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    assert await stack.wait_for(server.id, lambda s: s is None) is None
    got = await wait_status(stack, kept.id, VS.VOLUME_STATUS_AVAILABLE)
    assert not got.attachments and os.path.exists(volume_file(stack, kept.id))
    await wait_gone(stack, doomed.id)
    assert not os.path.exists(volume_file(stack, doomed.id))
