"""Volumes on the rbd backend through the public API, against a real
single-node Ceph: create, snapshot (protected), clone from the snapshot
(COW), clone of a volume (flattened), from an image (a clone of a raw image
in the images pool, else fetch + import), extend, attach (the domain gets
an RBD network disk with the monitors), delete: no RBD image left behind.
Clone vs import times for volume-from-image are printed at the end."""

import os
import subprocess
import time
import uuid

import pytest

from nimbus.volume.v1 import volume_pb2 as V
from stack import C, Stack, user

pytestmark = pytest.mark.ceph
VS, SS = V.VolumeStatus, V.SnapshotStatus
GiB, MiB = 1 << 30, 1 << 20
TIMINGS: dict[str, float] = {}


def rbd_images(ceph, pool: str = "volumes") -> dict:
    """name -> (size, parent 'pool/image@snap' or '', snapshot names)."""
    import rados
    import rbd
    out = {}
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx(pool) as ioctx:
        for name in rbd.RBD().list(ioctx):
            with rbd.Image(ioctx, name, read_only=True) as image:
                try:
                    p = image.get_parent_image_spec()
                    parent = f"{p['pool_name']}/{p['image_name']}@{p['snap_name']}"
                except rbd.ImageNotFound:
                    parent = ""
                out[name] = (image.size(), parent, sorted(s["name"] for s in image.list_snaps()))
    return out


def rbd_write(ceph, name: str, data: bytes) -> None:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("volumes") as ioctx, \
            rbd.Image(ioctx, name) as image:
        image.write(data, 0)


def rbd_read(ceph, name: str, length: int) -> bytes:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("volumes") as ioctx, \
            rbd.Image(ioctx, name, read_only=True) as image:
        return image.read(0, length)


@pytest.fixture(scope="module", autouse=True)
def report_timings(request):
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for name, seconds in TIMINGS.items():
            print(f"\n[rbd volume timings] {name}: {seconds * 1000:.0f} ms", end="")
        print()


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, ceph):
    if not ceph._rados.pool_exists("volumes"):
        ceph._create_pool("volumes")   # the harness makes images and vms only
    tmp = tmp_path_factory.mktemp("rbdvol")
    extra = dict(image_store="rbd", ceph_conf=ceph.conf_path, volume_backend="rbd")
    async with Stack(etcd.endpoint, str(tmp), hosts=1, volume_manager=True, **extra) as s:
        await s.flavor("m1.tiny")
        raw, qcow = tmp / "raw.img", tmp / "img.qcow2"
        with open(raw, "wb") as f:
            f.write(b"nimbus-raw-image" + os.urandom(64 * MiB))   # 64 MiB of data, then zeros
            f.truncate(256 * MiB)
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)],
                       check=True)
        s.raw = await s.image(str(raw), name="raw", disk_format="raw")
        s.qcow = await s.image(str(qcow), name="qcow", disk_format="qcow2")
        yield s
    assert rbd_images(ceph) == {}, "RBD images left behind in the volumes pool"


async def until_status(stack, volume_id, *statuses):
    return await stack.wait_volume(volume_id, lambda v: v is not None and v.status in statuses)


async def gone(stack, volume_id):
    assert await stack.wait_volume(volume_id, lambda v: v is None) is None


async def snapshot_state(stack, snapshot_id, predicate):
    return await stack.wait_snapshot(snapshot_id, predicate)


async def test_volumes_snapshots_clones_on_ceph(stack, ceph):
    me = user("rita", f"rbd-{uuid.uuid4().hex[:6]}")
    api = stack.volumes
    vol = (await api.CreateVolume(V.CreateVolumeRequest(size_gb=1), metadata=me)).volume
    vol = await until_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    name = f"volume-{vol.id}"
    assert rbd_images(ceph)[name] == (GiB, "", [])
    rbd_write(ceph, name, b"nimbus-volume")

    snap = (await api.CreateSnapshot(V.CreateSnapshotRequest(volume_id=vol.id), metadata=me)).snapshot
    await snapshot_state(stack, snap.id, lambda s: s.status == SS.SNAPSHOT_STATUS_AVAILABLE)
    assert rbd_images(ceph)[name][2] == [f"snapshot-{snap.id}"]

    started = time.perf_counter()
    from_snap = (await api.CreateVolume(V.CreateVolumeRequest(snapshot_id=snap.id, size_gb=2),
                                        metadata=me)).volume
    await until_status(stack, from_snap.id, VS.VOLUME_STATUS_AVAILABLE)
    TIMINGS["volume from a snapshot (COW clone), request -> available"] = time.perf_counter() - started
    clone = (await api.CreateVolume(V.CreateVolumeRequest(source_volume_id=vol.id),
                                    metadata=me)).volume
    await until_status(stack, clone.id, VS.VOLUME_STATUS_AVAILABLE)
    images = rbd_images(ceph)
    assert images[f"volume-{from_snap.id}"][:2] == (2 * GiB, f"volumes/{name}@snapshot-{snap.id}")
    assert images[f"volume-{clone.id}"] == (GiB, "", [])            # flattened
    assert images[name][2] == [f"snapshot-{snap.id}"]                # its temporary snapshot gone
    for copy in (from_snap, clone):
        assert rbd_read(ceph, f"volume-{copy.id}", 13) == b"nimbus-volume"

    await api.ExtendVolume(V.ExtendVolumeRequest(id=vol.id, new_size_gb=3), metadata=me)
    vol = await until_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    assert vol.size_gb == 3 and rbd_images(ceph)[name][0] == 3 * GiB

    # A snapshot with a clone cannot go: refused with the reason, still available.
    await api.DeleteSnapshot(V.DeleteSnapshotRequest(id=snap.id), metadata=me)
    busy = await snapshot_state(stack, snap.id, lambda s: s.status == SS.SNAPSHOT_STATUS_AVAILABLE
                                and s.fault)
    assert "dependent volume" in busy.fault
    await api.DeleteVolume(V.DeleteVolumeRequest(id=from_snap.id), metadata=me)
    await gone(stack, from_snap.id)
    await api.DeleteSnapshot(V.DeleteSnapshotRequest(id=snap.id), metadata=me)
    assert await snapshot_state(stack, snap.id, lambda s: s is None) is None
    for v in (vol, clone):
        await api.DeleteVolume(V.DeleteVolumeRequest(id=v.id), metadata=me)
    for v in (vol, clone):
        await gone(stack, v.id)
    assert not any(n in rbd_images(ceph) for n in (name, f"volume-{clone.id}"))


@pytest.mark.parametrize("image, cloned", [("raw", True), ("qcow", False)])
async def test_volume_from_image_clone_or_import(stack, ceph, image, cloned):
    me = user("sam", f"rbd-{uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    vol = (await stack.volumes.CreateVolume(V.CreateVolumeRequest(size_gb=1, image_ref=image),
                                            metadata=me)).volume
    vol = await until_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE, VS.VOLUME_STATUS_ERROR)
    TIMINGS[f"volume from a 256 MiB {image} image (64 MiB data) ({'clone' if cloned else 'fetch+import'}), "
            "request -> available"] = time.perf_counter() - started
    assert vol.status == VS.VOLUME_STATUS_AVAILABLE, vol.fault
    size, parent, _ = rbd_images(ceph)[f"volume-{vol.id}"]
    image_id = stack.raw.id if cloned else stack.qcow.id
    assert size == GiB and parent == (f"images/{image_id}@snap" if cloned else "")
    assert rbd_read(ceph, f"volume-{vol.id}", 16) == b"nimbus-raw-image"
    await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me)
    await gone(stack, vol.id)


async def test_attach_gives_the_domain_an_rbd_disk_with_the_monitors(stack, ceph):
    me = user("tom", f"rbd-{uuid.uuid4().hex[:6]}")
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="r", image_ref="qcow", flavor_ref="m1.tiny"), metadata=me)).servers[0]
    assert (await stack.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
    vol = (await stack.volumes.CreateVolume(V.CreateVolumeRequest(size_gb=1), metadata=me)).volume
    await until_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    await stack.api.AttachVolume(C.AttachVolumeRequest(server_id=server.id, volume_id=vol.id),
                                 metadata=me)
    await until_status(stack, vol.id, VS.VOLUME_STATUS_IN_USE)
    agent = stack.agents.agents[0]
    with open(os.path.join(agent.driver.instance_dir(server.id), "libvirt.xml")) as f:
        xml = f.read()
    assert f"<source protocol=\"rbd\" name=\"volumes/volume-{vol.id}\">" in xml or \
        f"<source protocol='rbd' name='volumes/volume-{vol.id}'>" in xml, xml
    host, port = ceph.monitors[0]
    assert f'name="{host}" port="{port}"' in xml or f"name='{host}' port='{port}'" in xml
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    assert await stack.wait_for(server.id, lambda s: s is None) is None
    await until_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
    await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me)
    await gone(stack, vol.id)


async def test_boot_from_an_rbd_volume_through_the_public_api(stack, ceph):
    """image -> volume (a COW clone of the raw image) as the root disk: the
    domain's vda is the RBD volume; the delete takes it (delete_on_termination)."""
    me = user("uli", f"rbd-{uuid.uuid4().hex[:6]}")
    await stack.flavor("m1.novol", disk_gb=0)
    started = time.perf_counter()
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="bfv", flavor_ref="m1.novol", block_device_mapping_v2=[C.BlockDeviceMapping(
            source_type="image", destination_type="volume", uuid=stack.raw.id, boot_index=0,
            has_boot_index=True, volume_size=1, delete_on_termination=True)]),
        metadata=me)).servers[0]
    done = await stack.wait_settled(server.id)
    TIMINGS["boot from an RBD volume (clone of a raw image), CreateServer -> ACTIVE"] = \
        time.perf_counter() - started
    assert done.vm_state == C.VM_STATE_ACTIVE, done.fault
    [att] = (await stack.api.ListVolumeAttachments(C.ListVolumeAttachmentsRequest(
        server_id=server.id), metadata=me)).attachments
    assert att.device == "vda"
    await until_status(stack, att.volume_id, VS.VOLUME_STATUS_IN_USE)
    assert rbd_images(ceph)[f"volume-{att.volume_id}"][1] == f"images/{stack.raw.id}@snap"
    agent = stack.agents.agents[0]
    assert agent.driver.disk_targets(server.id)["vda"] == f"volumes/volume-{att.volume_id}"
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    assert await stack.wait_for(server.id, lambda s: s is None) is None
    await gone(stack, att.volume_id)
