"""The QEMU tier for the server lifecycle: a real guest under libvirtd and
QEMU/TCG stopped, started, rebooted hard and resized from 256 to 512 MB of
RAM, each boot read back through GetConsoleOutput (the guest's init prints
its marker; the kernel prints the memory it was given)."""

import asyncio
import re
import time

import pytest

import qemu
from stack import C, Stack, user

pytestmark = pytest.mark.qemu
MEMORY = re.compile(r"Memory: \d+K/(\d+)K available")


async def console(s, server_id: str) -> str:
    return (await s.api.GetConsoleOutput(C.GetConsoleOutputRequest(id=server_id),
                                         metadata=user())).output


async def next_boot(s, server_id: str, before: str, timeout: float = 120) -> str:
    """The console once it shows a boot it did not show before (libvirt
    starts the serial file afresh when the domain starts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = await console(s, server_id)
        if qemu.GUEST_MARKER in out and out != before:
            return out
        await asyncio.sleep(0.5)
    raise AssertionError(f"no new boot on the console in {timeout:.0f}s:\n{out[-2000:]}")


def settled(vm_state):
    return lambda srv: srv is not None and srv.task_state == 0 and srv.vm_state == vm_state


async def test_real_guest_stop_start_reboot_and_resize(etcd, tmp_path_factory, libvirtd,
                                                       guest_files):
    state = qemu.shareable_dir(str(tmp_path_factory.mktemp("qemu-lifecycle")))
    async with Stack(etcd.endpoint, state, real_host="qemu-1", libvirt_uri=libvirtd.uri,
                     virt_type="qemu", disk_gb=0, reserved_host_memory_mb=0,
                     allow_resize_to_same_host=True, shutdown_timeout=5.0) as s:
        await qemu.upload_guest(s, guest_files, state)
        await s.flavor("g1.small", vcpus=1, ram_mb=512, disk_gb=1)
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="life-1", image_ref="guest", flavor_ref="g1.tiny", config_drive=True),
            metadata=user())).servers[0]
        await s.wait_for(server.id, settled(C.VM_STATE_ACTIVE), timeout=120)
        first = await next_boot(s, server.id, "")
        assert int(MEMORY.search(first).group(1)) < 262144

        await s.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
        stopped = await s.wait_for(server.id, settled(C.VM_STATE_STOPPED), timeout=60)
        assert stopped.power_state == C.POWER_STATE_SHUTDOWN
        await s.api.StartServer(C.StartServerRequest(id=server.id), metadata=user())
        await s.wait_for(server.id, settled(C.VM_STATE_ACTIVE), timeout=120)
        second = await next_boot(s, server.id, first)

        await s.api.RebootServer(C.RebootServerRequest(id=server.id, type=C.REBOOT_TYPE_HARD),
                                 metadata=user())
        await s.wait_for(server.id, settled(C.VM_STATE_ACTIVE), timeout=120)
        third = await next_boot(s, server.id, second)

        await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="g1.small"),
                                 metadata=user())
        resized = await s.wait_for(server.id, settled(C.VM_STATE_RESIZED), timeout=180)
        assert resized.flavor.ram_mb == 512 and resized.power_state == C.POWER_STATE_RUNNING
        after = await next_boot(s, server.id, third)
        assert int(MEMORY.search(after).group(1)) > 400000   # the second boot has 512 MB
        await s.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=user())
        await s.wait_for(server.id, settled(C.VM_STATE_ACTIVE), timeout=60)

        await s.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
        await s.wait_for(server.id, lambda srv: srv is None, timeout=60)
