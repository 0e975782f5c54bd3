"""The QEMU tier through the public API: a real guest under libvirtd and
QEMU/TCG (KVM cannot run guests on these machines), booted by nimbus from
kernel/ramdisk/disk images with a config drive; its init prints a marker and
the config drive's meta_data.json on the serial console."""

import os
import time

import libvirt
import pytest

import qemu
from stack import C, Stack, user

pytestmark = pytest.mark.qemu
TIMINGS: dict[str, float] = {}


async def test_real_guest_boots_reads_its_config_drive_and_is_deleted(
        etcd, tmp_path_factory, libvirtd, guest_files):
    state = qemu.shareable_dir(str(tmp_path_factory.mktemp("qemu-stack")))
    async with Stack(etcd.endpoint, state, real_host="qemu-1", libvirt_uri=libvirtd.uri,
                     virt_type="qemu", disk_gb=0, reserved_host_memory_mb=0) as s:
        await qemu.upload_guest(s, guest_files, state)
        started = time.monotonic()
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="guest-1", image_ref="guest", flavor_ref="g1.tiny", config_drive=True,
            metadata={"role": "probe"}), metadata=user())).servers[0]
        done = await s.wait_settled(server.id, timeout=120)
        TIMINGS["CreateServer -> ACTIVE"] = time.monotonic() - started
        assert done.vm_state == C.VM_STATE_ACTIVE, done.fault
        assert done.power_state == C.POWER_STATE_RUNNING

        agent = s.agents.agents[0]
        console = os.path.join(agent.driver.instance_dir(server.id), "console.log")
        lines = await _wait_console(console, lambda ls: qemu.meta_from_console(ls) is not None)
        TIMINGS["CreateServer -> meta_data.json on the console"] = time.monotonic() - started
        assert qemu.GUEST_MARKER in lines
        meta = qemu.meta_from_console(lines)
        assert meta["uuid"] == server.id and meta["name"] == "guest-1"
        assert meta["meta"] == {"role": "probe"} and meta["hostname"] == "guest-1"

        await s.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
        await s.wait_for(server.id, lambda srv: srv is None, timeout=60)
        with pytest.raises(libvirt.libvirtError):
            agent.driver.conn.lookupByUUIDString(server.id)
        assert not os.path.exists(agent.driver.instance_dir(server.id))


async def _wait_console(path, predicate, timeout=90):
    import asyncio
    return await asyncio.to_thread(qemu.wait_for_console, path, predicate, timeout)


def teardown_module():
    for name, seconds in TIMINGS.items():
        print(f"\n{name}: {seconds:.2f} s")
