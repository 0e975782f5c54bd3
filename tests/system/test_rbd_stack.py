"""The RBD tier through the public API: images stored in the Ceph images
pool, servers whose root disk and config drive live in the vms pool (COW
clones of raw images, imports of qcow2 ones), deleted without leftovers.
Real Ceph, real etcd, the libvirt test driver (which takes RBD disks as is)."""

import os
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from stack import C, Stack, user

TIMINGS: dict[str, float] = {}


def vms_images(ceph) -> set[str]:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("vms") as ioctx:
        return set(rbd.RBD().list(ioctx))


def parent_of(ceph, name: str) -> str:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("vms") as ioctx:
        with rbd.Image(ioctx, name, read_only=True) as image:
            try:
                return image.parent_info()[1]
            except rbd.ImageNotFound:
                return ""


@pytest.fixture
async def stack(etcd, tmp_path, ceph):
    extra = dict(image_backend="rbd", image_store="rbd", ceph_conf=ceph.conf_path)
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1, disk_gb=0, **extra) as s:
        await s.flavor("m1.tiny", disk_gb=1)
        raw = tmp_path / "raw.img"
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "64M"], check=True)
        qcow = tmp_path / "img.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "64M"], check=True)
        s.raw = await s.image(str(raw), name="raw", disk_format="raw")
        s.qcow = await s.image(str(qcow), name="qcow", disk_format="qcow2")
        yield s


@pytest.mark.parametrize("image, cloned", [("raw", True), ("qcow", False)])
async def test_server_disks_live_in_ceph_and_go_with_the_server(stack, ceph, image, cloned):
    # The host reports the cluster's capacity (disk_gb=0 means: ask the backend).
    node = next(iter(stack.scheduler.hosts.nodes.items.values())).msg
    assert node.total.disk_gb > 0
    started = time.perf_counter()
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="r", image_ref=image, flavor_ref="m1.tiny", config_drive=True), metadata=user())).servers[0]
    done = await stack.wait_settled(server.id)
    TIMINGS[f"CreateServer -> ACTIVE, {'clone' if cloned else 'fetch+import'}"] = \
        time.perf_counter() - started
    assert done.vm_state == C.VM_STATE_ACTIVE, done.fault
    disk, config = f"{server.id}_disk", f"{server.id}_disk.config"
    assert {disk, config} <= vms_images(ceph)
    assert (parent_of(ceph, disk) == stack.raw.id) == cloned
    inst = stack.agents.agents[0].driver.instance_dir(server.id)
    assert not os.path.exists(os.path.join(inst, "disk.config"))   # imported, local copy gone
    dom = ET.parse(os.path.join(inst, "libvirt.xml")).getroot()
    sources = {d.find("target").get("dev"): d.find("source").attrib for d in dom.findall("devices/disk")}
    assert sources["vda"]["protocol"] == "rbd" and sources["vda"]["name"] == f"vms/{disk}"
    assert sources["hdd"]["name"] == f"vms/{config}"

    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, lambda s: s is None)
    assert not {n for n in vms_images(ceph) if n.startswith(server.id)}


def teardown_module():
    for name, seconds in TIMINGS.items():
        print(f"\n{name}: {seconds * 1000:.0f} ms")


def rbd_size(ceph, name: str) -> int:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("vms") as ioctx:
        with rbd.Image(ioctx, name, read_only=True) as image:
            return image.size()


def rbd_snaps(ceph, name: str) -> set[str]:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("vms") as ioctx:
        with rbd.Image(ioctx, name, read_only=True) as image:
            return {s["name"] for s in image.list_snaps()}


@pytest.mark.parametrize("ending", ["confirm", "revert"])
async def test_resize_grows_the_rbd_disk_in_place_and_copies_nothing(etcd, tmp_path, ceph, ending):
    extra = dict(image_backend="rbd", image_store="rbd", ceph_conf=ceph.conf_path)
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, disk_gb=0, **extra) as s:
        await s.flavor("m1.tiny", disk_gb=1)
        await s.flavor("m1.small", ram_mb=1024, disk_gb=2)
        raw = tmp_path / "raw.img"
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "64M"], check=True)
        await s.image(str(raw), name="raw", disk_format="raw")
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="rz", image_ref="raw", flavor_ref="m1.tiny", config_drive=True),
            metadata=user())).servers[0]
        done = await s.wait_settled(server.id)
        assert done.vm_state == C.VM_STATE_ACTIVE, done.fault
        disk = f"{server.id}_disk"
        before = vms_images(ceph)
        assert rbd_size(ceph, disk) == 1 << 30
        await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user())
        resized = await s.wait_for(server.id, lambda x: x.task_state == 0 and
                                   x.vm_state in (C.VM_STATE_RESIZED, C.VM_STATE_ERROR))
        assert resized.vm_state == C.VM_STATE_RESIZED, resized.fault
        assert resized.host != done.host
        assert rbd_size(ceph, disk) == 2 << 30            # grown in place ...
        assert vms_images(ceph) == before                 # ... and nothing copied
        assert rbd_snaps(ceph, disk) == {"nimbus_resize"}  # what a revert returns to
        dest = next(a for a in s.agents.agents if a.host == resized.host)
        inst = dest.driver.instance_dir(server.id)
        assert "disk" not in os.listdir(inst)
        dom = ET.parse(os.path.join(inst, "libvirt.xml")).getroot()
        sources = {d.find("target").get("dev"): d.find("source").attrib
                   for d in dom.findall("devices/disk")}
        assert sources["vda"]["name"] == f"vms/{disk}" and sources["hdd"]["name"] == f"vms/{disk}.config"
        if ending == "confirm":
            await s.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id),
                                            metadata=user())
            expected_host, expected_size = resized.host, 2 << 30
        else:
            await s.api.RevertServerResize(C.RevertServerResizeRequest(id=server.id),
                                           metadata=user())
            expected_host, expected_size = done.host, 1 << 30   # the old size: rolled back
        ended = await s.wait_for(server.id, lambda x: x.task_state == 0 and
                                 x.vm_state in (C.VM_STATE_ACTIVE, C.VM_STATE_ERROR))
        assert ended.vm_state == C.VM_STATE_ACTIVE, ended.fault
        assert ended.host == expected_host
        assert rbd_size(ceph, disk) == expected_size
        assert rbd_snaps(ceph, disk) == set()
        assert vms_images(ceph) == before                 # the clean-up kept the disks
        await s.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
        await s.wait_for(server.id, lambda x: x is None)
        assert not {n for n in vms_images(ceph) if n.startswith(server.id)}
