"""The QEMU tier for volumes: a real guest under libvirtd + QEMU/TCG with an
RBD volume (real single-node Ceph) attached at boot sees it as /dev/vdb of
the right size (its kernel prints the size on the serial console); a hot
attach of a second volume shows up in the guest the same way, and a hot
detach takes it off the running domain and out of the guest's /sys/block. Attach/detach times are printed."""

import asyncio
import os
import re
import time
import uuid

import pytest

import qemu
from nimbus.volume.v1 import volume_pb2 as V
from stack import C, Stack, user

pytestmark = [pytest.mark.qemu, pytest.mark.ceph]
VS = V.VolumeStatus
TIMINGS: dict[str, float] = {}


def blocks_line(device: str):
    """The guest kernel's line for a virtio disk: '[vdb] 2097152 512-byte logical blocks'."""
    return re.compile(rf"\[{device}\] (\d+) 512-byte logical blocks")


def guest_devices(lines) -> list[list[str]]:
    """Each block-device listing the guest printed, oldest first."""
    return [l.split("NIMBUS-BLOCK-DEVICES", 1)[1].split() for l in lines
            if "NIMBUS-BLOCK-DEVICES" in l] or [[]]


def gone_in_guest(device: str):
    """The guest listed `device` once and its latest listing has it no more."""
    def seen(lines) -> bool:
        listings = guest_devices(lines)
        return any(device in l for l in listings) and device not in listings[-1]
    return seen


async def console_has(path: str, pattern, timeout: float = 90) -> re.Match:
    lines = await asyncio.to_thread(qemu.wait_for_console, path,
                                    lambda ls: any(pattern.search(l) for l in ls), timeout)
    return next(m for m in map(pattern.search, lines) if m)


async def available(s, me, size_gb: int) -> V.Volume:
    vol = (await s.volumes.CreateVolume(V.CreateVolumeRequest(size_gb=size_gb), metadata=me)).volume
    return await s.wait_volume(vol.id, lambda v: v is not None and v.status == VS.VOLUME_STATUS_AVAILABLE)


async def test_real_guest_sees_its_rbd_volumes(etcd, tmp_path_factory, libvirtd, guest_files, ceph):
    if not ceph._rados.pool_exists("volumes"):
        ceph._create_pool("volumes")
    state = qemu.shareable_dir(str(tmp_path_factory.mktemp("qemu-volumes")))
    async with Stack(etcd.endpoint, state, real_host="qemu-1", libvirt_uri=libvirtd.uri,
                     virt_type="qemu", disk_gb=0, reserved_host_memory_mb=0, volume_manager=True,
                     volume_backend="rbd", ceph_conf=ceph.conf_path) as s:
        await qemu.upload_guest(s, guest_files, state)
        me = user("vera", f"qv-{uuid.uuid4().hex[:6]}")
        at_boot = await available(s, me, 1)
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="vol-guest", image_ref="guest", flavor_ref="g1.tiny", config_drive=True,
            block_device_mapping_v2=[C.BlockDeviceMapping(
                source_type="volume", destination_type="volume", uuid=at_boot.id,
                device_name="vdb", boot_index=-1, has_boot_index=True)]), metadata=me)).servers[0]
        done = await s.wait_settled(server.id, timeout=180)
        assert done.vm_state == C.VM_STATE_ACTIVE, done.fault
        agent = s.agents.agents[0]
        console = os.path.join(agent.driver.instance_dir(server.id), "console.log")
        seen = await console_has(console, blocks_line("vdb"))
        assert int(seen.group(1)) * 512 == 1 << 30
        devices = await console_has(console, re.compile(r"NIMBUS-BLOCK-DEVICES (.*)"))
        assert "vdb" in devices.group(1).split()
        await s.wait_volume(at_boot.id, lambda v: v is not None and v.status == VS.VOLUME_STATUS_IN_USE)

        hot = await available(s, me, 2)
        started = time.monotonic()
        await s.api.AttachVolume(C.AttachVolumeRequest(server_id=server.id, volume_id=hot.id),
                                 metadata=me)
        await s.wait_volume(hot.id, lambda v: v is not None and v.status == VS.VOLUME_STATUS_IN_USE, timeout=60)
        TIMINGS["hot attach: AttachVolume -> in-use"] = time.monotonic() - started
        seen = await console_has(console, blocks_line("vdc"), timeout=60)
        TIMINGS["hot attach: AttachVolume -> the guest's kernel sees vdc"] = time.monotonic() - started
        assert int(seen.group(1)) * 512 == 2 << 30
        await asyncio.to_thread(qemu.wait_for_console, console,
                                lambda ls: "vdc" in guest_devices(ls)[-1], 30)
        live = await agent.driver._call(agent.driver.disk_targets, server.id, False)
        assert live["vdc"] == f"volumes/volume-{hot.id}"

        started = time.monotonic()
        await s.api.DetachVolume(C.DetachVolumeRequest(server_id=server.id, volume_id=hot.id),
                                 metadata=me)
        await s.wait_volume(hot.id, lambda v: v is not None and v.status == VS.VOLUME_STATUS_AVAILABLE, timeout=60)
        TIMINGS["hot detach: DetachVolume -> available"] = time.monotonic() - started
        deadline = time.monotonic() + 30
        while "vdc" in await agent.driver._call(agent.driver.disk_targets, server.id, False):
            assert time.monotonic() < deadline, "vdc is still on the running domain"
            await asyncio.sleep(0.2)
        TIMINGS["hot detach: DetachVolume -> gone from the running domain"] = time.monotonic() - started
        assert "vdc" not in await agent.driver._call(agent.driver.disk_targets, server.id, True)
        # ...and from the guest: its init lists /sys/block whenever it changes.
        await asyncio.to_thread(qemu.wait_for_console, console, gone_in_guest("vdc"), 60)
        TIMINGS["hot detach: DetachVolume -> the guest's /sys/block has no vdc"] = \
            time.monotonic() - started

        await s.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
        await s.wait_for(server.id, lambda srv: srv is None, timeout=60)
        for vol in (at_boot, hot):
            await s.wait_volume(vol.id, lambda v: v is not None and v.status == VS.VOLUME_STATUS_AVAILABLE)
            await s.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me)
            await s.wait_volume(vol.id, lambda v: v is None)


def teardown_module():
    for name, seconds in TIMINGS.items():
        print(f"\n[qemu volume timings] {name}: {seconds:.2f} s")
