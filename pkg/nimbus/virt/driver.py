"""The libvirt driver (Nova's LibvirtDriver, the parts nimbus needs).

- `check_virt_type`: refuse at start-up a virt_type this machine cannot run.
- `disk_mapping`: Nova's blockinfo for the default layout: root `vda`,
  ephemeral `vdb`, swap next, all virtio; the config drive an IDE cdrom `hdd`.
- `guest_xml`: the domain from a GuestConfig (flavor, disks from the image
  backend — files or RBD —, bridge interfaces with the ports' MACs, a serial
  console to a file, direct kernel boot when the image has a kernel).
- `spawn`: define, start paused, plug the VIFs, resume, wait until RUNNING.
- `attach_disk` / `detach_disk`: a volume's disk added or removed, live and
  in the persistent definition on a real hypervisor (LIVE|CONFIG; CONFIG
  alone while the domain is off), in the persistent definition only on the
  test driver (no hot-plug); libvirt.xml follows either way.

libvirt calls block, so each driver runs them on its own single thread (one
per connection keeps them ordered and off the event loop). virt_type `test`
is libvirt's built-in test driver (`test:///default`, or `test:///<node.xml>`
for a private simulated host); `qemu` and `kvm` are real hypervisors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import shutil
import time
from typing import Awaitable, Callable
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

import libvirt

from nimbus.compute.v1 import compute_pb2
from nimbus.imagebackend import DiskSource

DOMAIN_PREFIX = "nimbus-"
VIRT_TYPES = ("test", "qemu", "kvm")
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


class UnusableVirtType(Exception):
    pass


def check_virt_type(virt_type: str, uri: str, cpuinfo: str = "/proc/cpuinfo") -> None:
    """Say clearly, at start-up, why a virt_type cannot work here."""
    if virt_type not in VIRT_TYPES:
        raise UnusableVirtType(f"virt_type must be one of {', '.join(VIRT_TYPES)}, not {virt_type!r}")
    if virt_type == "test":
        if not uri.startswith("test://"):
            raise UnusableVirtType(f"virt_type test needs a test:// libvirt URI, not {uri!r}")
        return
    if uri.startswith("test://"):
        raise UnusableVirtType(f"virt_type {virt_type} needs a real libvirt URI (qemu:///system)")
    if virt_type == "kvm":
        with open(cpuinfo) as f:
            flags = f.read()
        if " vmx" not in flags and " svm" not in flags:
            raise UnusableVirtType(
                "virt_type kvm: this CPU has no vmx/svm flag (nested virtualisation is off), "
                "so KVM guests cannot run here; use virt_type qemu (TCG emulation)")
        if not os.path.exists("/dev/kvm"):
            raise UnusableVirtType("virt_type kvm: /dev/kvm is missing (kvm module not loaded)")
    if not (shutil.which("qemu-system-x86_64") or os.path.exists("/usr/bin/qemu-system-x86_64")):
        raise UnusableVirtType(f"virt_type {virt_type}: qemu-system-x86_64 is not installed "
                               "(apt-get install qemu-system-x86)")


@dataclasses.dataclass(frozen=True)
class GuestDisk:
    dev: str
    bus: str
    device: str        # disk or cdrom
    source: DiskSource


@dataclasses.dataclass(frozen=True)
class Vif:
    bridge: str
    mac: str
    model: str = "virtio"


@dataclasses.dataclass
class GuestConfig:
    server: compute_pb2.Server
    virt_type: str
    disks: list[GuestDisk]
    console_log: str
    vifs: list[Vif] = dataclasses.field(default_factory=list)
    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""


def disk_mapping(flavor: compute_pb2.Flavor, config_drive: bool) -> dict[str, tuple[str, str, str]]:
    """name -> (target dev, bus, device), as Nova's blockinfo lays them out."""
    mapping = {"disk": ("vda", "virtio", "disk")}
    letters = iter("bcdefgh")
    if flavor.ephemeral_gb:
        mapping["disk.eph0"] = (f"vd{next(letters)}", "virtio", "disk")
    if flavor.swap_mb:
        mapping["disk.swap"] = (f"vd{next(letters)}", "virtio", "disk")
    if config_drive:
        mapping["disk.config"] = ("hdd", "ide", "cdrom")
    return mapping


def _disk_xml(disk: GuestDisk) -> str:
    src = disk.source
    readonly = "<readonly/>" if disk.device == "cdrom" else ""
    if src.kind == "network":
        hosts = "".join(f"<host name={quoteattr(h)} port='{p}'/>" for h, p in src.monitors)
        return (f"<disk type='network' device='{disk.device}'>"
                f"<driver name='qemu' type='{src.format}' cache='writeback' discard='unmap'/>"
                f"<source protocol='rbd' name={quoteattr(src.name)}>{hosts}</source>"
                f"<target dev='{disk.dev}' bus='{disk.bus}'/>{readonly}</disk>")
    cache = "none" if disk.device == "disk" else "writeback"
    return (f"<disk type='file' device='{disk.device}'>"
            f"<driver name='qemu' type='{src.format}' cache='{cache}'/>"
            f"<source file={quoteattr(src.path)}/>"
            f"<target dev='{disk.dev}' bus='{disk.bus}'/>{readonly}</disk>")


def _find_disk(domain: ElementTree.Element, dev: str):
    for disk in domain.iter("disk"):
        target = disk.find("target")
        if target is not None and target.get("dev") == dev:
            return disk
    return None


def edit_disks(xml: str, dev: str, add: str | None) -> str | None:
    """The domain XML with the disk at `dev` added (`add`: its XML) or
    removed (`add` None); None when there is nothing to change."""
    domain = ElementTree.fromstring(xml)
    found = _find_disk(domain, dev)
    devices = domain.find("devices")
    if add is not None:
        if found is not None:
            return None
        devices.append(ElementTree.fromstring(add))
    else:
        if found is None:
            return None
        devices.remove(found)
    return ElementTree.tostring(domain, encoding="unicode")


def guest_xml(cfg: GuestConfig) -> str:
    server, flavor = cfg.server, cfg.server.flavor
    if cfg.kernel:
        boot = (f"<kernel>{escape(cfg.kernel)}</kernel>"
                + (f"<initrd>{escape(cfg.initrd)}</initrd>" if cfg.initrd else "")
                + f"<cmdline>{escape(cfg.cmdline)}</cmdline>")
    else:
        boot = "<boot dev='hd'/>"
    cpu = ("<cpu mode='host-model'/>" if cfg.virt_type == "kvm"
           else "<cpu mode='custom' match='exact'><model>qemu64</model></cpu>")
    disks = "\n    ".join(_disk_xml(d) for d in cfg.disks)
    vifs = "\n    ".join(
        f"<interface type='bridge'><mac address='{v.mac}'/><source bridge={quoteattr(v.bridge)}/>"
        f"<model type='{v.model}'/></interface>" for v in cfg.vifs)
    return f"""<domain type='{cfg.virt_type}'>
  <name>{DOMAIN_PREFIX}{server.id}</name>
  <uuid>{server.id}</uuid>
  <title>{escape(server.name)}</title>
  <memory unit='MiB'>{flavor.ram_mb}</memory>
  <vcpu>{flavor.vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>{boot}</os>
  <features><acpi/><apic/></features>
  {cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {disks}
    {vifs}
    <serial type='file'><source path={quoteattr(cfg.console_log)}/><target port='0'/></serial>
    <console type='file'><source path={quoteattr(cfg.console_log)}/><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


class LibvirtDriver:
    def __init__(self, uri: str, virt_type: str, instances_path: str, boot_timeout: float = 120.0):
        self.uri = uri
        self.virt_type = virt_type
        self.instances_path = instances_path
        self.boot_timeout = boot_timeout
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="libvirt")
        self.conn: libvirt.virConnect | None = None

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def connect(self) -> None:
        check_virt_type(self.virt_type, self.uri)
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

    async def spawn(self, cfg: GuestConfig,
                    plug_vifs: Callable[[list[Vif]], Awaitable[None]] | None = None,
                    start: bool = True) -> str:
        """Write libvirt.xml, define the domain, start it paused, plug the
        VIFs, resume, and wait until it runs (`start` False: define only, a
        stopped server's resize). Returns the XML."""
        xml = guest_xml(cfg)
        with open(os.path.join(self.instance_dir(cfg.server.id), "libvirt.xml"), "w") as f:
            f.write(xml)
        try:
            dom = await self._call(self.conn.defineXML, xml)
            if not start:
                return xml
            if self.virt_type == "test":
                # The test driver cannot start paused; it has no VIFs to wait for.
                await self._call(dom.create)
            else:
                await self._call(dom.createWithFlags, libvirt.VIR_DOMAIN_START_PAUSED)
                if plug_vifs is not None:
                    await plug_vifs(cfg.vifs)
                await self._call(dom.resume)
            deadline = time.monotonic() + self.boot_timeout
            while (await self._call(dom.state))[0] != libvirt.VIR_DOMAIN_RUNNING:
                if time.monotonic() > deadline:
                    raise SpawnError(f"domain did not reach RUNNING in {self.boot_timeout:.0f}s")
                await asyncio.sleep(0.1)
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc
        return xml

    async def plug_vifs(self, vifs: list[Vif]) -> None:
        """Make sure each VIF's bridge exists and is up (Nova's linux-bridge
        plug). The test driver needs no real bridge."""
        if self.virt_type == "test":
            return
        for bridge in dict.fromkeys(v.bridge for v in vifs):
            if os.path.exists(f"/sys/class/net/{bridge}"):
                continue
            for argv in (("ip", "link", "add", "name", bridge, "type", "bridge"),
                         ("ip", "link", "set", bridge, "up")):
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                _, err = await proc.communicate()
                if proc.returncode != 0 and not os.path.exists(f"/sys/class/net/{bridge}"):
                    raise SpawnError(f"cannot create bridge {bridge}: {err.decode().strip()}")

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
        try:
            dom.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise

    async def destroy(self, instance_id: str) -> None:
        """Destroy and undefine the domain. Idempotent."""
        await self._call(self._destroy_sync, instance_id)

    # ---- power (Nova's power_off / power_on / reboot) -----------------------

    def _domain_sync(self, instance_id: str) -> "libvirt.virDomain":
        """The domain, defined again from the instance dir's libvirt.xml when
        the hypervisor forgot it (the test driver forgets everything when
        its host restarts; so does a host whose libvirt state was lost)."""
        try:
            return self.conn.lookupByUUIDString(instance_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        path = os.path.join(self.instance_dir(instance_id), "libvirt.xml")
        try:
            with open(path) as f:
                xml = f.read()
        except FileNotFoundError:
            raise SpawnError(f"domain {instance_id} is gone and {path} is missing") from None
        return self.conn.defineXML(xml)

    async def _wait_state(self, dom, wanted: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (await self._call(dom.state))[0] != wanted:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def power_off(self, instance_id: str, timeout: float = 60.0) -> None:
        """Ask the guest to shut down (ACPI); destroy it when it has not
        within `timeout` (Nova's clean shutdown). The domain stays defined;
        one the hypervisor forgot is off already."""
        try:
            try:
                dom = await self._call(self.conn.lookupByUUIDString, instance_id)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                raise
            if not await self._call(dom.isActive):
                return
            try:
                await self._call(dom.shutdown)
            except libvirt.libvirtError:
                pass   # no ACPI in the guest: the hard way below
            if await self._wait_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout):
                return
            if await self._call(dom.isActive):
                await self._call(dom.destroy)
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc

    async def power_on(self, instance_id: str) -> None:
        """Start the domain (defined again from libvirt.xml when forgotten)
        and wait until it runs."""
        try:
            dom = await self._call(self._domain_sync, instance_id)
            if not await self._call(dom.isActive):
                await self._call(dom.create)
            if not await self._wait_state(dom, libvirt.VIR_DOMAIN_RUNNING, self.boot_timeout):
                raise SpawnError(f"domain did not reach RUNNING in {self.boot_timeout:.0f}s")
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc

    async def reboot(self, instance_id: str, hard: bool) -> None:
        """Soft: the guest reboots itself (a refusal falls back to hard, as
        Nova's does). Hard: destroy and start again from the definition."""
        try:
            dom = await self._call(self._domain_sync, instance_id)
            if not hard and await self._call(dom.isActive):
                try:
                    await self._call(dom.reboot, 0)
                    return
                except libvirt.libvirtError:
                    pass
            if await self._call(dom.isActive):
                await self._call(dom.destroy)
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc
        await self.power_on(instance_id)

    def console_tail(self, instance_id: str, length: int) -> str:
        """The last `length` lines of the serial console file (all when 0);
        "" when the guest never wrote one (the test driver has no guest)."""
        path = os.path.join(self.instance_dir(instance_id), "console.log")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines(keepends=True)
        return "".join(lines[-length:] if length else lines)

    # ---- volumes (Nova's attach_volume / detach_volume) ----------------------

    def _disk_sync(self, instance_id: str, dev: str, add: str | None) -> None:
        dom = self._domain_sync(instance_id)
        live = self.virt_type != "test" and dom.isActive()
        if self.virt_type == "test":
            # No hot-plug: the persistent definition only.
            new = edit_disks(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dev, add)
            if new is not None:
                self.conn.defineXML(new)
        else:
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0)
            current = ElementTree.fromstring(dom.XMLDesc(0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE))
            found = _find_disk(current, dev)
            if add is not None and found is None:
                dom.attachDeviceFlags(add, flags)
            elif add is None and found is not None:
                dom.detachDeviceFlags(ElementTree.tostring(found, encoding="unicode"), flags)
        path = os.path.join(self.instance_dir(instance_id), "libvirt.xml")
        if os.path.exists(path):
            with open(path) as f:
                new = edit_disks(f.read(), dev, add)
            if new is not None:
                with open(path + ".tmp", "w") as f:
                    f.write(new)
                os.replace(path + ".tmp", path)

    async def attach_disk(self, instance_id: str, disk: GuestDisk) -> None:
        """Add a volume's disk (idempotent: one already at its target stays)."""
        try:
            await self._call(self._disk_sync, instance_id, disk.dev, _disk_xml(disk))
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc

    async def detach_disk(self, instance_id: str, dev: str) -> None:
        """Remove the disk at `dev` (idempotent)."""
        try:
            await self._call(self._disk_sync, instance_id, dev, None)
        except libvirt.libvirtError as exc:
            raise SpawnError(f"libvirt: {exc.get_error_message()}") from exc

    def disk_targets(self, instance_id: str, inactive: bool = True) -> dict[str, str]:
        """target dev -> source (file path or RBD name) in the definition."""
        dom = self.conn.lookupByUUIDString(instance_id)
        domain = ElementTree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))
        out = {}
        for disk in domain.iter("disk"):
            source = disk.find("source")
            if source is not None:
                out[disk.find("target").get("dev")] = source.get("file") or source.get("name") or ""
        return out

    async def instance_ids(self) -> set[str]:
        doms = await self._call(self.conn.listAllDomains)
        return {d.UUIDString() for d in doms if d.name().startswith(DOMAIN_PREFIX)}

    def _power_states_sync(self) -> dict[str, int]:
        out = {}
        for dom in self.conn.listAllDomains():
            if dom.name().startswith(DOMAIN_PREFIX):
                try:
                    state = dom.state()[0]
                except libvirt.libvirtError:
                    continue   # vanished between list and state
                out[dom.UUIDString()] = POWER_STATES.get(state, compute_pb2.POWER_STATE_UNSPECIFIED)
        return out

    async def power_states(self) -> dict[str, int]:
        """Power state of every nimbus domain; absent ones are not listed."""
        return await self._call(self._power_states_sync)
