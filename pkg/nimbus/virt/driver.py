"""The libvirt driver: guest XML, define + start, wait for RUNNING, destroy.

libvirt calls block, so each driver runs them on its own single thread (one
per connection keeps them ordered and off the event loop). virt_type `test`
is libvirt's built-in test driver (`test:///default`, or `test:///<node.xml>`
for a private simulated host); `qemu` and `kvm` are real hypervisors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import time
from xml.sax.saxutils import escape, quoteattr

import libvirt

from nimbus.compute.v1 import compute_pb2

DOMAIN_PREFIX = "nimbus-"
libvirt.registerErrorHandler(lambda *_: None, None)   # errors arrive as exceptions

POWER_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: compute_pb2.POWER_STATE_RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: compute_pb2.POWER_STATE_RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: compute_pb2.POWER_STATE_PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: compute_pb2.POWER_STATE_SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: compute_pb2.POWER_STATE_SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: compute_pb2.POWER_STATE_CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: compute_pb2.POWER_STATE_SUSPENDED,
}


class SpawnError(Exception):
    pass


def guest_xml(server: compute_pb2.Server, virt_type: str, disk_path: str, console_log: str) -> str:
    flavor = server.flavor
    return f"""<domain type='{virt_type}'>
  <name>{DOMAIN_PREFIX}{server.id}</name>
  <uuid>{server.id}</uuid>
  <title>{escape(server.name)}</title>
  <memory unit='MiB'>{flavor.ram_mb}</memory>
  <vcpu>{flavor.vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <cpu mode='{'host-passthrough' if virt_type == 'kvm' else 'custom'}'{'' if virt_type == 'kvm' else " match='exact'"}>{'' if virt_type == 'kvm' else '<model>qemu64</model>'}</cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file={quoteattr(disk_path)}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path={quoteattr(console_log)}/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
"""


class LibvirtDriver:
    def __init__(self, uri: str, virt_type: str, instances_path: str, boot_timeout: float = 60.0):
        self.uri = uri
        self.virt_type = virt_type
        self.instances_path = instances_path
        self.boot_timeout = boot_timeout
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="libvirt")
        self.conn: libvirt.virConnect | None = None

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def connect(self) -> None:
        self.conn = await self._call(libvirt.open, self.uri)

    async def close(self) -> None:
        if self.conn is not None:
            await self._call(self.conn.close)
        self._thread.shutdown(wait=False)

    async def inventory(self) -> tuple[int, int]:
        """(vCPUs, memory MB) of the hypervisor."""
        info = await self._call(self.conn.getInfo)
        return info[2], info[1]

    def instance_dir(self, instance_id: str) -> str:
        return os.path.join(self.instances_path, instance_id)

    async def spawn(self, server: compute_pb2.Server, create_disk) -> None:
        """Create the instance dir and disk (create_disk(path)), write and
        define the domain XML, start it and wait until it runs."""
        inst_dir = self.instance_dir(server.id)
        os.makedirs(inst_dir, exist_ok=True)
        disk = os.path.join(inst_dir, "disk")
        await create_disk(disk)
        xml = guest_xml(server, self.virt_type, disk, os.path.join(inst_dir, "console.log"))
        with open(os.path.join(inst_dir, "libvirt.xml"), "w") as f:
            f.write(xml)
        try:
            dom = await self._call(self.conn.defineXML, xml)
            await self._call(dom.create)
            deadline = time.monotonic() + self.boot_timeout
            while (await self._call(dom.state))[0] != libvirt.VIR_DOMAIN_RUNNING:
                if time.monotonic() > deadline:
                    raise SpawnError(f"domain did not reach RUNNING in {self.boot_timeout:.0f}s")
                await asyncio.sleep(0.1)
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc

    def _destroy_sync(self, instance_id: str) -> None:
        try:
            dom = self.conn.lookupByUUIDString(instance_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            return
        if dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                    raise   # OPERATION_INVALID: it stopped by itself meanwhile
        dom.undefine()

    async def destroy(self, instance_id: str) -> None:
        """Destroy and undefine the domain, remove the instance dir. Idempotent."""
        await self._call(self._destroy_sync, instance_id)
        shutil.rmtree(self.instance_dir(instance_id), ignore_errors=True)

    async def instance_ids(self) -> set[str]:
        doms = await self._call(self.conn.listAllDomains)
        return {d.UUIDString() for d in doms if d.name().startswith(DOMAIN_PREFIX)}

    async def power_state(self, instance_id: str) -> int:
        try:
            dom = await self._call(self.conn.lookupByUUIDString, instance_id)
            state = (await self._call(dom.state))[0]
        except libvirt.libvirtError:
            return compute_pb2.POWER_STATE_UNSPECIFIED
        return POWER_STATES.get(state, compute_pb2.POWER_STATE_UNSPECIFIED)
