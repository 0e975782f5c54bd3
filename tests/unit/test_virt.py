"""The libvirt driver's pure parts and the local image cache, with real
qemu-img and genisoimage: disk layout, domain XML, virt_type checks, config
drive contents, fetch_to_raw refusals."""

import asyncio
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from nimbus.compute.v1 import compute_pb2 as C
from nimbus.imagebackend import DiskSource, ImageError, qemu_img
from nimbus.imagebackend.local import LocalBackend
from nimbus.virt import configdrive
from nimbus.virt.driver import (GuestConfig, GuestDisk, UnusableVirtType, Vif, check_virt_type,
                                disk_mapping, guest_xml)

SERVER = C.Server(id="6f1c0d3e-1111-4222-8333-944455556666", name="web <1> & co",
                  flavor=C.Flavor(vcpus=2, ram_mb=512, disk_gb=1))


@pytest.mark.parametrize("flavor, config_drive, expected", [
    (C.Flavor(), False, {"disk": ("vda", "virtio", "disk")}),
    (C.Flavor(ephemeral_gb=1), False, {"disk": ("vda", "virtio", "disk"),
                                       "disk.eph0": ("vdb", "virtio", "disk")}),
    (C.Flavor(swap_mb=512), True, {"disk": ("vda", "virtio", "disk"),
                                   "disk.swap": ("vdb", "virtio", "disk"),
                                   "disk.config": ("hdd", "ide", "cdrom")}),
    (C.Flavor(ephemeral_gb=1, swap_mb=512), True, {
        "disk": ("vda", "virtio", "disk"), "disk.eph0": ("vdb", "virtio", "disk"),
        "disk.swap": ("vdc", "virtio", "disk"), "disk.config": ("hdd", "ide", "cdrom")}),
])
def test_disk_mapping(flavor, config_drive, expected):
    assert disk_mapping(flavor, config_drive) == expected


def test_guest_xml_rbd_root_config_drive_kernel_boot_and_vif():
    cfg = GuestConfig(
        server=SERVER, virt_type="qemu", console_log="/i/console.log",
        disks=[GuestDisk("vda", "virtio", "disk", DiskSource(
                   "network", "raw", name="vms/x_disk", monitors=(("127.0.0.1", 3300),))),
               GuestDisk("hdd", "ide", "cdrom", DiskSource("file", "raw", path="/i/disk.config"))],
        vifs=[Vif("br-int", "fa:16:3e:00:00:01")], kernel="/i/kernel", initrd="/i/ramdisk",
        cmdline="console=ttyS0")
    dom = ET.fromstring(guest_xml(cfg))
    assert dom.get("type") == "qemu" and dom.findtext("uuid") == SERVER.id
    assert dom.findtext("title") == SERVER.name and dom.findtext("memory") == "512"
    assert dom.findtext("os/kernel") == "/i/kernel" and dom.findtext("os/cmdline") == "console=ttyS0"
    assert dom.find("os/boot") is None
    rbd = dom.find("devices/disk[@type='network']")
    assert rbd.find("source").attrib == {"protocol": "rbd", "name": "vms/x_disk"}
    assert rbd.find("source/host").attrib == {"name": "127.0.0.1", "port": "3300"}
    cdrom = dom.find("devices/disk[@device='cdrom']")
    assert cdrom.find("target").attrib == {"dev": "hdd", "bus": "ide"} and cdrom.find("readonly") is not None
    vif = dom.find("devices/interface")
    assert vif.find("mac").get("address") == "fa:16:3e:00:00:01"
    assert vif.find("source").get("bridge") == "br-int"
    assert dom.find("devices/serial/source").get("path") == "/i/console.log"


@pytest.mark.parametrize("virt_type, uri, cpuflags, error", [
    ("test", "test:///default", "", None),
    ("test", "qemu:///system", "", "test:// libvirt URI"),
    ("xen", "xen:///", "", "must be one of"),
    ("kvm", "qemu:///system", "flags : fpu sse2", "no vmx/svm"),
    ("qemu", "test:///default", "", "real libvirt URI"),
])
def test_check_virt_type(tmp_path, virt_type, uri, cpuflags, error):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(cpuflags + "\n")
    if error is None:
        check_virt_type(virt_type, uri, str(cpuinfo))
    else:
        with pytest.raises(UnusableVirtType, match=error):
            check_virt_type(virt_type, uri, str(cpuinfo))


async def test_config_drive_holds_meta_data_user_data_and_files(tmp_path):
    iso = str(tmp_path / "disk.config")
    await configdrive.build(iso, SERVER, user_data=b"#!/bin/sh\necho hi\n",
                            public_keys={"k1": "ssh-ed25519 AAAA"}, files=[("/etc/motd", b"hello")])
    label = subprocess.run(["isoinfo", "-d", "-i", iso], capture_output=True, text=True).stdout
    assert "Volume id: config-2" in label

    def extract(path):
        return subprocess.run(["isoinfo", "-R", "-i", iso, "-x", path], capture_output=True).stdout
    meta = json.loads(extract("/openstack/latest/meta_data.json"))
    assert meta["uuid"] == SERVER.id and meta["hostname"] == "web-1-co"
    assert meta["public_keys"] == {"k1": "ssh-ed25519 AAAA"}
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]
    assert extract("/openstack/latest/user_data") == b"#!/bin/sh\necho hi\n"
    assert extract("/openstack/content/0000") == b"hello"
    assert json.loads(extract("/openstack/latest/network_data.json"))["links"] == []


def _download_of(path, calls=None):
    async def chunks():
        if calls is not None:
            calls.append(1)
        await asyncio.sleep(0.01)
        with open(path, "rb") as f:
            yield f.read()
    return chunks


async def test_local_backend_fetches_once_and_overlays(tmp_path):
    image = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    backend = LocalBackend(str(tmp_path / "instances"))
    calls = []
    dirs = [tmp_path / "instances" / f"i{n}" for n in range(5)]
    for d in dirs:
        d.mkdir(parents=True)
    disks = await asyncio.gather(*(backend.create_root_disk(
        d.name, str(d), "img-1", "qcow2", _download_of(image, calls), 1) for d in dirs))
    assert len(calls) == 1   # five concurrent builds, one download
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", disks[0].path],
                                     capture_output=True, check=True).stdout)
    assert info["virtual-size"] == 1 << 30 and info["backing-filename"] == "../_base/" + \
        os.path.basename(backend.cache.path("img-1"))
    assert os.path.normpath(info["full-backing-filename"]) == backend.cache.path("img-1")
    await backend.remove_disks("i0", str(dirs[0]))
    assert not os.path.exists(disks[0].path)


@pytest.mark.parametrize("source_backing", ["relative", "absolute"])
async def test_a_moved_root_disk_points_at_this_hosts_cache(tmp_path, source_backing):
    """A root disk sent from another host: its relative backing name already
    names this host's cache (no qemu-img rebase); an absolute one (the
    source's own path, as overlays were made before) is rebased onto it."""
    image = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    source, dest = LocalBackend(str(tmp_path / "src")), LocalBackend(str(tmp_path / "dst"))
    (tmp_path / "src" / "i").mkdir(parents=True)
    disk = await source.create_root_disk("i", str(tmp_path / "src" / "i"), "img-1", "qcow2",
                                         _download_of(image), 1)
    if source_backing == "absolute":
        subprocess.run(["qemu-img", "rebase", "-u", "-b", source.cache.path("img-1"), "-F",
                        "qcow2", disk.path], check=True)
    (tmp_path / "dst" / "i").mkdir(parents=True)
    shutil.copyfile(disk.path, tmp_path / "dst" / "i" / "disk")
    root, _ = await dest.moved_disks("i", str(tmp_path / "dst" / "i"), "img-1",
                                     _download_of(image), 2, False)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", root.path],
                                     capture_output=True, check=True).stdout)
    assert os.path.normpath(info["full-backing-filename"]) == dest.cache.path("img-1")
    assert info["backing-filename"].startswith("../_base/") and info["virtual-size"] == 2 << 30
    assert qemu_img.backing_of(root.path) == (info["backing-filename"], "qcow2")
    subprocess.run(["qemu-img", "check", "-q", root.path], check=True)


def _qemu(*args: str) -> str:
    return subprocess.run(args, capture_output=True, check=True, text=True).stdout


@pytest.mark.parametrize("case, new_size, in_place", [
    ("grow", 20 << 30, True),
    ("grow, v2 header", 3 << 30, True),
    ("grow past what the L1 table's cluster maps", 5 << 40, False),
    ("same size", 1 << 30, False),
    ("with a snapshot", 2 << 30, False),
    ("backing longer than the overlay", 2 << 30, False),
])
async def test_grow_in_place_is_what_qemu_img_resize_makes(tmp_path, case, new_size, in_place):
    """The header rewrite leaves an image equal, block for block, to qemu-img
    resize's, consistent (qemu-img check), writable past the old end; it
    refuses what qemu-img must do, leaving the file as it was."""
    base, ours, theirs = (str(tmp_path / n) for n in ("base", "ours", "theirs"))
    _qemu("qemu-img", "create", "-q", "-f", "qcow2", base, "2G" if "longer" in case else "64M")
    _qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", base)
    _qemu("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base,
          *(["-o", "compat=0.10"] if "v2" in case else []), ours, "1G")
    _qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 512k 1M", "-c",
          "write -P 0x33 1000M 8M", ours)
    if "snapshot" in case:
        _qemu("qemu-img", "snapshot", "-c", "s1", ours)
    shutil.copyfile(ours, theirs)
    before = open(ours, "rb").read()
    backing_size = json.loads(_qemu("qemu-img", "info", "--output=json", base))["virtual-size"]
    assert qemu_img.grow_in_place(ours, new_size, backing_size) is in_place
    if not in_place:
        assert open(ours, "rb").read() == before
        return
    _qemu("qemu-img", "resize", "-q", theirs, str(new_size))
    _qemu("qemu-img", "check", "-q", ours)
    _qemu("qemu-img", "compare", "-q", ours, theirs)   # exit 0: the same guest-visible bytes
    assert json.loads(_qemu("qemu-img", "info", "--output=json", ours))["virtual-size"] == new_size
    out = _qemu("qemu-io", "-f", "qcow2", "-c", f"write -P 0x44 {new_size - (1 << 20)} 1M", "-c",
                f"read -P 0x44 {new_size - (1 << 20)} 1M", "-c", "read -P 0x22 512k 1M", ours)
    assert "Pattern verification failed" not in out
    _qemu("qemu-img", "check", "-q", ours)


@pytest.mark.parametrize("make, root_gb, message", [
    (["create", "-q", "-f", "qcow2", "{img}", "2G"], 1, "larger than the flavor's root disk"),
    (["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "{other}", "{img}", "64M"], 1,
     "backing file"),
])
async def test_local_backend_refuses(tmp_path, make, root_gb, message):
    other = tmp_path / "other.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(other), "64M"], check=True)
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", *[a.format(img=img, other=other) for a in make]], check=True)
    backend = LocalBackend(str(tmp_path / "instances"))
    inst = tmp_path / "instances" / "i"
    inst.mkdir(parents=True)
    with pytest.raises(ImageError, match=message):
        await backend.create_root_disk("i", str(inst), "img", "qcow2", _download_of(img), root_gb)
    assert not os.path.exists(inst / "disk")
    leftovers = [n for n in os.listdir(backend.cache.base_dir) if n.endswith(".part")]
    assert leftovers == []
