"""VolumeService (Cinder's API) and the volume manager with the file
backend, through real gRPC on a real etcd, with the whole stack running
(one stack for the module; every test uses its own projects)."""

import asyncio
import os
import subprocess
import uuid

import grpc
import pytest

from nimbus import quota
from nimbus.compute.v1 import quotas_pb2, quotas_pb2_grpc
from nimbus.imagebackend import qemu_img
from nimbus.volume.v1 import volume_pb2 as V
from stack import ADMIN, Stack, expect, make_qcow2, user

VS, SS = V.VolumeStatus, V.SnapshotStatus
GIB = 1 << 30
Code = grpc.StatusCode


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("vstack")), hosts=1,
                     volume_manager=True) as s:
        await s.image(qcow2_image)
        s.quotas = quotas_pb2_grpc.QuotaServiceStub(s.channel)
        yield s


def new_project() -> str:
    return f"vol-{uuid.uuid4().hex[:8]}"


def volume_file(stack, volume_id: str) -> str:
    return os.path.join(stack.cfg.state_dir, "volumes", f"volume-{volume_id}")


async def wait_status(stack, volume_id: str, *statuses):
    return await stack.wait_volume(volume_id, lambda v: v is not None and v.status in statuses)


async def wait_gone(stack, volume_id: str):
    assert await stack.wait_volume(volume_id, lambda v: v is None) is None


async def wait_snapshot(stack, snapshot_id: str, predicate):
    return await stack.wait_snapshot(snapshot_id, predicate)


async def create(stack, me, **fields) -> V.Volume:
    resp = await stack.volumes.CreateVolume(V.CreateVolumeRequest(**fields), metadata=me)
    assert resp.volume.status == VS.VOLUME_STATUS_CREATING
    return resp.volume


async def usage(stack, project: str) -> dict:
    got = await stack.quotas.GetQuotaUsage(quotas_pb2.GetQuotaUsageRequest(project_id=project),
                                           metadata=ADMIN)
    return {r: getattr(got.usage, r).in_use for r in ("volumes", "gigabytes", "snapshots")}


async def test_volume_snapshot_clone_extend_delete(stack):
    """The whole life of a volume on the file backend, each step checked on
    the file itself and in the quota usage."""
    project = new_project()
    me = user("carol", project)
    vol = await create(stack, me, name="data", size_gb=1, metadata={"k": "v"})
    assert vol.backend == ""   # admins only
    vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    assert vol.fault == "" and vol.volume_type == "default" and vol.availability_zone == "nova"
    assert os.path.getsize(volume_file(stack, vol.id)) == GIB
    assert await usage(stack, project) == {"volumes": 1, "gigabytes": 1, "snapshots": 0}

    updated = (await stack.volumes.UpdateVolume(V.UpdateVolumeRequest(
        id=vol.id, name="data-1", update_metadata=True, metadata={"a": "b"}), metadata=me)).volume
    assert updated.name == "data-1" and dict(updated.metadata) == {"a": "b"}

    with open(volume_file(stack, vol.id), "r+b") as f:   # data the copies must carry
        f.write(b"nimbus-volume")
    ext = await stack.volumes.ExtendVolume(V.ExtendVolumeRequest(id=vol.id, new_size_gb=2),
                                           metadata=me)
    assert ext.volume.status == VS.VOLUME_STATUS_EXTENDING
    vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    assert vol.size_gb == 2 and os.path.getsize(volume_file(stack, vol.id)) == 2 * GIB
    assert await usage(stack, project) == {"volumes": 1, "gigabytes": 2, "snapshots": 0}

    snap = (await stack.volumes.CreateSnapshot(V.CreateSnapshotRequest(volume_id=vol.id, name="s1"),
                                               metadata=me)).snapshot
    snap = await wait_snapshot(stack, snap.id, lambda s: s is not None and s.status == SS.SNAPSHOT_STATUS_AVAILABLE)
    assert snap.size_gb == 2
    await expect(stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me),
                 Code.FAILED_PRECONDITION)

    from_snap = await create(stack, me, snapshot_id=snap.id)        # size: the snapshot's
    clone = await create(stack, me, source_volume_id=vol.id, size_gb=3)
    from_snap = await wait_status(stack, from_snap.id, VS.VOLUME_STATUS_AVAILABLE)
    clone = await wait_status(stack, clone.id, VS.VOLUME_STATUS_AVAILABLE)
    assert (from_snap.size_gb, clone.size_gb) == (2, 3)
    for copy in (from_snap, clone):
        with open(volume_file(stack, copy.id), "rb") as f:
            assert f.read(13) == b"nimbus-volume"
    assert await usage(stack, project) == {"volumes": 3, "gigabytes": 2 + 2 + 3 + 2, "snapshots": 1}

    await stack.volumes.DeleteSnapshot(V.DeleteSnapshotRequest(id=snap.id), metadata=me)
    assert await wait_snapshot(stack, snap.id, lambda s: s is None) is None
    for v in (vol, from_snap, clone):
        deleting = await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=v.id), metadata=me)
        assert deleting.volume.status == VS.VOLUME_STATUS_DELETING
    for v in (vol, from_snap, clone):
        await wait_gone(stack, v.id)
        assert not os.path.exists(volume_file(stack, v.id))
    assert await usage(stack, project) == {"volumes": 0, "gigabytes": 0, "snapshots": 0}
    left = os.listdir(os.path.join(stack.cfg.state_dir, "volumes"))
    assert not [n for n in left if snap.id in n or n.endswith((".part", ".image"))]


@pytest.fixture(scope="module")
async def fixtures(stack):
    """A project with an available volume that has a snapshot, and another
    project's volume: what the bad requests refer to."""
    project, other = new_project(), new_project()
    me, them = user("dave", project), user("erin", other)
    mine = await create(stack, me, name="mine", size_gb=2)
    theirs = await create(stack, them, name="theirs", size_gb=1)
    for v in (mine, theirs):
        await wait_status(stack, v.id, VS.VOLUME_STATUS_AVAILABLE)
    snap = (await stack.volumes.CreateSnapshot(V.CreateSnapshotRequest(volume_id=mine.id),
                                               metadata=me)).snapshot
    await wait_snapshot(stack, snap.id, lambda s: s is not None and s.status == SS.SNAPSHOT_STATUS_AVAILABLE)
    their_snap = (await stack.volumes.CreateSnapshot(V.CreateSnapshotRequest(volume_id=theirs.id),
                                                     metadata=them)).snapshot
    return dict(project=project, me=me, mine=mine.id, theirs=theirs.id, snap=snap.id,
                their_snap=their_snap.id)


R = V.CreateVolumeRequest
BAD_REQUESTS = [
    # (case, method, request built from the fixtures, code, field)
    ("size 0", "CreateVolume", lambda f: R(size_gb=0), Code.INVALID_ARGUMENT, "size_gb"),
    ("negative size", "CreateVolume", lambda f: R(size_gb=-1), Code.INVALID_ARGUMENT, "size_gb"),
    ("over the gigabytes quota", "CreateVolume", lambda f: R(size_gb=1000),
     Code.RESOURCE_EXHAUSTED, ""),
    ("too large", "CreateVolume", lambda f: R(size_gb=100000), Code.INVALID_ARGUMENT, "size_gb"),
    ("unknown snapshot", "CreateVolume", lambda f: R(snapshot_id=str(uuid.uuid4())),
     Code.NOT_FOUND, "snapshot"),
    ("another project's snapshot", "CreateVolume", lambda f: R(snapshot_id=f["their_snap"]),
     Code.NOT_FOUND, "snapshot"),
    ("smaller than its snapshot", "CreateVolume", lambda f: R(snapshot_id=f["snap"], size_gb=1),
     Code.INVALID_ARGUMENT, "size_gb"),
    ("smaller than its source", "CreateVolume", lambda f: R(source_volume_id=f["mine"], size_gb=1),
     Code.INVALID_ARGUMENT, "size_gb"),
    ("another project's source volume", "CreateVolume", lambda f: R(source_volume_id=f["theirs"]),
     Code.NOT_FOUND, "volume"),
    ("unknown type", "CreateVolume", lambda f: R(size_gb=1, volume_type="gold"),
     Code.NOT_FOUND, "volume_type"),
    ("unknown image", "CreateVolume", lambda f: R(size_gb=1, image_ref="no-such-image"),
     Code.NOT_FOUND, "image"),
    ("unknown zone", "CreateVolume", lambda f: R(size_gb=1, availability_zone="mars"),
     Code.INVALID_ARGUMENT, "availability_zone"),
    ("name too long", "CreateVolume", lambda f: R(size_gb=1, name="n" * 256),
     Code.INVALID_ARGUMENT, "name"),
    ("another project's volume", "GetVolume", lambda f: V.GetVolumeRequest(id=f["theirs"]),
     Code.NOT_FOUND, "volume"),
    ("shrink", "ExtendVolume", lambda f: V.ExtendVolumeRequest(id=f["mine"], new_size_gb=1),
     Code.INVALID_ARGUMENT, "new_size_gb"),
    ("extend to 0", "ExtendVolume", lambda f: V.ExtendVolumeRequest(id=f["mine"]),
     Code.INVALID_ARGUMENT, "new_size_gb"),
    ("extend another project's", "ExtendVolume",
     lambda f: V.ExtendVolumeRequest(id=f["theirs"], new_size_gb=5), Code.NOT_FOUND, "volume"),
    ("delete with snapshots", "DeleteVolume", lambda f: V.DeleteVolumeRequest(id=f["mine"]),
     Code.FAILED_PRECONDITION, ""),
    ("delete another project's", "DeleteVolume", lambda f: V.DeleteVolumeRequest(id=f["theirs"]),
     Code.NOT_FOUND, "volume"),
    ("snapshot of an unknown volume", "CreateSnapshot",
     lambda f: V.CreateSnapshotRequest(volume_id=str(uuid.uuid4())), Code.NOT_FOUND, "volume"),
    ("snapshot without a volume", "CreateSnapshot", lambda f: V.CreateSnapshotRequest(),
     Code.INVALID_ARGUMENT, "volume_id"),
    ("delete another project's snapshot", "DeleteSnapshot",
     lambda f: V.DeleteSnapshotRequest(id=f["their_snap"]), Code.NOT_FOUND, "snapshot"),
    ("list all projects as a member", "ListVolumes", lambda f: V.ListVolumesRequest(all_projects=True),
     Code.PERMISSION_DENIED, ""),
    ("a bad page token", "ListVolumes", lambda f: V.ListVolumesRequest(page_token="x"),
     Code.INVALID_ARGUMENT, "page_token"),
    ("volume type as a member", "CreateVolumeType",
     lambda f: V.CreateVolumeTypeRequest(name="gold", backend="file"), Code.PERMISSION_DENIED, ""),
]


@pytest.mark.parametrize("case,method,build,code,field", BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
async def test_bad_requests(stack, fixtures, case, method, build, code, field):
    before = await usage(stack, fixtures["project"])
    listed = await stack.volumes.ListVolumes(V.ListVolumesRequest(), metadata=fixtures["me"])
    await expect(getattr(stack.volumes, method)(build(fixtures), metadata=fixtures["me"]), code, field)
    # Nothing left behind: no record, no quota, the volume as it was.
    assert await usage(stack, fixtures["project"]) == before
    after = await stack.volumes.ListVolumes(V.ListVolumesRequest(), metadata=fixtures["me"])
    assert after == listed and [v.status for v in after.volumes] == [VS.VOLUME_STATUS_AVAILABLE]


@pytest.mark.parametrize("name,backend,code,field", [
    ("", "file", Code.INVALID_ARGUMENT, "name"),
    ("gold", "nfs", Code.INVALID_ARGUMENT, "backend"),
    ("default", "file", Code.ALREADY_EXISTS, ""),
])
async def test_bad_volume_types(stack, name, backend, code, field):
    await expect(stack.volumes.CreateVolumeType(V.CreateVolumeTypeRequest(name=name, backend=backend),
                                                metadata=ADMIN), code, field)


async def test_volume_types(stack):
    name = f"t-{uuid.uuid4().hex[:6]}"
    made = (await stack.volumes.CreateVolumeType(V.CreateVolumeTypeRequest(
        name=name, backend="file", description="fast"), metadata=ADMIN)).volume_type
    assert not made.is_default
    listed = (await stack.volumes.ListVolumeTypes(V.ListVolumeTypesRequest(),
                                                  metadata=user())).volume_types
    assert {t.name: (t.backend, t.is_default) for t in listed}.items() >= {
        "default": ("file", True), name: ("file", False)}.items()
    vol = await create(stack, user("frank", new_project()), size_gb=1, volume_type=name)
    vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    assert vol.volume_type == name


@pytest.mark.parametrize("limit", [{"volumes": 3}, {"gigabytes": 7}])
async def test_concurrent_creates_never_exceed_the_quota(stack, limit):
    """Ten concurrent 2 GB creates against 3 volumes, or against 7 GB: three win."""
    project = new_project()
    await stack.quotas.UpdateQuotas(quotas_pb2.UpdateQuotasRequest(
        project_id=project, quota_set=quotas_pb2.QuotaSet(**limit)), metadata=ADMIN)
    me = user("gina", project)
    results = await asyncio.gather(
        *(stack.volumes.CreateVolume(V.CreateVolumeRequest(size_gb=2), metadata=me)
          for _ in range(10)), return_exceptions=True)
    made = [r.volume for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(made) == 3, refused
    assert all(e.code() == Code.RESOURCE_EXHAUSTED for e in refused)
    assert await usage(stack, project) == {"volumes": 3, "gigabytes": 6, "snapshots": 0}
    listed = await stack.volumes.ListVolumes(V.ListVolumesRequest(page_size=2), metadata=me)
    rest = await stack.volumes.ListVolumes(V.ListVolumesRequest(
        page_size=2, page_token=listed.next_page_token), metadata=me)
    assert {v.id for v in [*listed.volumes, *rest.volumes]} == {v.id for v in made}
    assert rest.next_page_token == ""
    for v in made:
        await wait_status(stack, v.id, VS.VOLUME_STATUS_AVAILABLE)
        await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=v.id), metadata=me)
    for v in made:
        await wait_gone(stack, v.id)
    assert await usage(stack, project) == {"volumes": 0, "gigabytes": 0, "snapshots": 0}


async def test_volume_from_image_is_raw_and_bootable(stack, tmp_path):
    project = new_project()
    me = user("hank", project)
    vol = await create(stack, me, size_gb=1, image_ref="cirros")
    vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    assert vol.bootable and vol.image_id
    info = await qemu_img.info(volume_file(stack, vol.id))
    assert info["format"] == "raw" and info["virtual-size"] == GIB

    # An image larger than the volume: the manager refuses it, the volume
    # ends in error with a fault the user reads, its quota still counted
    # (Cinder's), and it can be deleted.
    big = make_qcow2(str(tmp_path / "big.qcow2"), "2G")
    image = await stack.image(big, name=f"big-{uuid.uuid4().hex[:6]}", metadata=me, visibility="private")
    vol = await create(stack, me, size_gb=1, image_ref=image.id)
    vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_ERROR)
    assert "larger than the volume" in vol.fault
    assert not os.path.exists(volume_file(stack, vol.id))
    await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me)
    await wait_gone(stack, vol.id)


async def test_failed_extend_gives_the_quota_back(stack):
    """A real backend fault: the volume's file removed behind the manager's
    back. The extend ends error_extending, the size and the quota as before."""
    project = new_project()
    me = user("ivy", project)
    vol = await create(stack, me, size_gb=1)
    await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    os.unlink(volume_file(stack, vol.id))
    await stack.volumes.ExtendVolume(V.ExtendVolumeRequest(id=vol.id, new_size_gb=4), metadata=me)
    vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_ERROR_EXTENDING)
    assert vol.size_gb == 1 and "no file" in vol.fault
    assert await usage(stack, project) == {"volumes": 1, "gigabytes": 1, "snapshots": 0}
    await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me)
    await wait_gone(stack, vol.id)
    assert await usage(stack, project) == {"volumes": 0, "gigabytes": 0, "snapshots": 0}


async def test_watch_streams_current_synced_then_changes(stack):
    me = user("jack", new_project())
    vol = await create(stack, me, size_gb=1)
    call = stack.volumes.WatchVolumes(V.WatchVolumesRequest(), metadata=me)
    W = V.WatchVolumesResponse
    seen = []
    available = (W.EVENT_TYPE_UPSERT, VS.VOLUME_STATUS_AVAILABLE)
    async with asyncio.timeout(30):
        async for event in call:
            seen.append((event.type, event.volume.status))
            # The volume may already be available in the current state, before SYNCED.
            if available in seen and (W.EVENT_TYPE_SYNCED, 0) in seen:
                break
    call.cancel()
    # First the current state (creating, or already available), then SYNCED, then changes.
    assert seen[0] in ((W.EVENT_TYPE_UPSERT, VS.VOLUME_STATUS_CREATING), available), seen
    assert seen[1] == (W.EVENT_TYPE_SYNCED, 0), seen
    assert seen[-1] == available, seen
