"""Real libvirtd + QEMU/TCG for system tests, and a tiny guest to boot in it.

`Libvirtd(run_dir)` runs virtlogd and libvirtd (monolithic daemon, system mode:
`qemu:///system`) in the background, each in its own session (setsid), stdout
and stderr in `run_dir/virtlogd.log` and `run_dir/libvirtd.log`. There is no
systemd on these machines, so nothing else starts them. Their sockets and pid
files stay where system mode puts them (/run/libvirt/..., /run/libvirtd.pid):
libvirtd locks its pid file, so two daemons can never run at once.

If either daemon is already running on the machine (its socket accepts a
connection), it is reused and NOT stopped by `stop()`: whoever started it owns
it. Then `stop()` only destroys and undefines the domains whose names start
with `cleanup_prefix` (default "nimbus-") that were not there at `start()`.
When this object started libvirtd it owns every domain on it: `stop()`
destroys all running domains (libvirtd never kills QEMU on its own exit: a
QEMU outlives the daemon), undefines those defined since `start()`, kills any
QEMU still alive from the domains' pid files, then SIGTERMs libvirtd and
virtlogd (SIGKILL to their process groups after 10 s). Nothing is left behind.
An atexit hook calls `stop()` if the caller forgets (and `start()` stops what
it started if it fails). The daemons get PR_SET_PDEATHSIG so they die with the
thread that started them if the test process is SIGKILLed; a running QEMU
survives that, and the next `start()` that owns libvirtd (which re-attaches
running QEMUs) destroys and undefines every domain named `cleanup_prefix*`
(listed in `.reaped`).

Caveat: two test sessions on one machine share the one system libvirtd; the
one that started it stops it at its end, under the other's feet.

/dev/kvm: `start()` gives it root:kvm 0660 (what udev does on a normal Debian
host; these machines have no udev). Without that, libvirtd re-probes QEMU's
capabilities (~4 s) on every lookup and one defineXML took 52 s: see
`fix_dev_kvm_permissions()`. The probe result is cached in
/var/cache/libvirt/qemu/capabilities: on a fresh machine the first define pays
~4-12 s once; afterwards define+create takes ~0.4 s.

Tests run as root. The QEMU process runs as libvirt-qemu: every directory on
the path to a kernel, initrd, disk, ISO must be searchable by it (o+x); pytest's
tmp_path is 0700, so use `shareable_dir()` (below) for files QEMU opens.
libvirt relabels (chowns) the files it hands to QEMU and gives them back when
the domain stops; the serial log file is created by libvirt as root 0600.

`build_guest(cache_dir)` builds (once per package versions) a tiny guest from
Debian packages fetched with `apt-get download` (needs `apt-get update` done
once): the cloud kernel (the real linux-image-6.1.0-N-cloud-amd64 that
linux-image-cloud-amd64's candidate depends on) and busybox-static. Its
initramfs `/init` loads virtio/IDE/CD-ROM/ISO9660 modules, prints
GUEST_MARKER on the console (ttyS0), mounts the config drive (ISO9660 label
`config-2`), prints its openstack/latest/meta_data.json between META_BEGIN and
META_END, then sleeps forever (the domain stays RUNNING).

Note: Debian's cloud kernel has no AHCI driver (CONFIG_SATA_AHCI is not set):
a CD-ROM on bus='sata' (q35) is invisible to this guest; use bus='ide' on the
default i440fx machine (ata_piix), as `domain_xml()` does.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

GUEST_MARKER = "NIMBUS-GUEST-BOOTED"
META_BEGIN = "NIMBUS-META-BEGIN"
META_END = "NIMBUS-META-END"
META_ERROR = "NIMBUS-META-ERROR"

LIBVIRT_URI = "qemu:///system"
RUN_LIBVIRT = "/run/libvirt"
LIBVIRTD_SOCKETS = (f"{RUN_LIBVIRT}/libvirt-sock", f"{RUN_LIBVIRT}/virtqemud-sock")
VIRTLOGD_SOCKET = f"{RUN_LIBVIRT}/virtlogd-sock"
QEMU_PID_DIR = f"{RUN_LIBVIRT}/qemu"
QEMU_LOG_DIR = "/var/log/libvirt/qemu"

BINARIES = {
    "qemu-system-x86_64": "apt-get install qemu-system-x86",
    "libvirtd": "apt-get install libvirt-daemon-system",
    "virtlogd": "apt-get install libvirt-daemon-system",
    "qemu-img": "apt-get install qemu-utils",
    "genisoimage": "apt-get install genisoimage",
}


def _which(name: str) -> str | None:
    # libvirtd/virtlogd live in /usr/sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def missing_requirements() -> list[str]:
    """What this machine lacks to run Libvirtd + a guest (empty: nothing)."""
    missing = [f"binary {b} ({how})" for b, how in BINARIES.items() if _which(b) is None]
    try:
        import libvirt  # noqa: F401
    except ImportError as e:
        missing.append(f"python module libvirt ({e}; pip install libvirt-python)")
    return missing


def _die_with_parent(sig: int = signal.SIGKILL):
    def preexec() -> None:
        # In the child between fork and exec: `sig` when the starting thread goes away.
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    return preexec


def _socket_alive(path: str) -> bool:
    if not os.path.exists(path):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _quiet_libvirt() -> None:
    import libvirt
    libvirt.registerErrorHandler(lambda *a: None, None)


class LibvirtError(RuntimeError):
    pass


def fix_dev_kvm_permissions() -> bool:
    """Give /dev/kvm the owner udev gives it on a normal Debian host
    (root:kvm 0660; libvirt-qemu is in group kvm). Returns True if it changed.

    Without udev (these machines) /dev/kvm is root:root 0600. libvirtd then
    probes QEMU's capabilities with KVM (the probe can open it) but validates
    its capability cache as libvirt-qemu (which cannot), finds the cache
    "outdated" on every lookup and re-probes (~4 s) again and again: one
    defineXML took 52 s. Domains stay type 'qemu' (TCG): KVM itself is not
    usable here (nested, no vmx/svm) whatever the permissions say."""
    import grp
    path = "/dev/kvm"
    if os.geteuid() != 0 or not os.path.exists(path):
        return False
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return False
    st = os.stat(path)
    if st.st_gid == kvm_gid and stat.S_IMODE(st.st_mode) & 0o060 == 0o060:
        return False
    os.chown(path, -1, kvm_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode) | 0o660)
    return True


class Libvirtd:
    def __init__(self, run_dir: str, uri: str = LIBVIRT_URI, cleanup_prefix: str = "nimbus-",
                 connect_timeout: float = 120.0):
        self.run_dir = os.path.abspath(run_dir)
        self.uri = uri
        self.cleanup_prefix = cleanup_prefix
        self.connect_timeout = connect_timeout
        self.owns_libvirtd = False
        self.owns_virtlogd = False
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen] = {}
        self._outs: list = []
        self._initial_defined: set[str] | None = None   # domains there at start()
        self._started = False
        self.kvm_fixed = False
        self.reaped: list[str] = []     # leftover domains destroyed+undefined by start()

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> "Libvirtd":
        _quiet_libvirt()
        started = time.monotonic()
        os.makedirs(self.run_dir, exist_ok=True)
        self.kvm_fixed = fix_dev_kvm_permissions()
        atexit.register(self.stop)
        self._started = True
        try:
            self._start_daemons()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _start_daemons(self) -> None:
        if not _socket_alive(VIRTLOGD_SOCKET):
            self._spawn("virtlogd", [_which("virtlogd") or "virtlogd"])
            self.owns_virtlogd = self._wait_own_socket("virtlogd", [VIRTLOGD_SOCKET], 30)
        if not any(_socket_alive(p) for p in LIBVIRTD_SOCKETS):
            # SIGTERM, not SIGKILL, on parent death: libvirtd then saves its state.
            self._spawn("libvirtd", [_which("libvirtd") or "libvirtd"],
                        _die_with_parent(signal.SIGTERM))
            self.owns_libvirtd = self._wait_own_socket("libvirtd", LIBVIRTD_SOCKETS, 30)
        conn = self._wait_connect()
        try:
            if self.owns_libvirtd:
                # Leftovers of a killed earlier test run (libvirtd re-attaches running QEMUs).
                for dom in conn.listAllDomains():
                    if dom.name().startswith(self.cleanup_prefix):
                        self.reaped.append(dom.name())
                        self._destroy(dom)
                        self._undefine(dom)
            self._initial_defined = {d.name() for d in conn.listAllDomains()}
        finally:
            conn.close()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._cleanup_domains()
        finally:
            for name in ("libvirtd", "virtlogd"):
                proc = self._procs.pop(name, None)
                if proc is None:
                    continue
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)   # the daemon and any child in its group
                except ProcessLookupError:
                    pass
                proc.wait()
            for out in self._outs:
                out.close()
            self._outs.clear()

    def __enter__(self) -> "Libvirtd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests --------------------------------------------------

    def connect(self):
        import libvirt
        return libvirt.open(self.uri)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values()]

    def log_tail(self, lines: int = 40) -> str:
        chunks = []
        for name in ("libvirtd", "virtlogd"):
            path = os.path.join(self.run_dir, f"{name}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    chunks.append(f"--- {path}\n" + "".join(f.readlines()[-lines:]))
        return "\n".join(chunks)

    @staticmethod
    def qemu_log_tail(domain_name: str, lines: int = 40) -> str:
        """The end of libvirt's per-domain QEMU log (command line, QEMU's stderr)."""
        path = os.path.join(QEMU_LOG_DIR, f"{domain_name}.log")
        try:
            with open(path, errors="replace") as f:
                return f"--- {path}\n" + "".join(f.readlines()[-lines:])
        except OSError as e:
            return f"--- {path}: {e}"

    # -- internals ----------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], preexec=None) -> None:
        out = open(os.path.join(self.run_dir, f"{name}.log"), "ab")
        self._outs.append(out)
        self._procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=preexec or _die_with_parent())

    def _check_alive(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise LibvirtError(f"{name} exited with {proc.returncode}\n{self.log_tail()}")

    def _wait_own_socket(self, name: str, paths, timeout: float) -> bool:
        """Wait for the daemon just spawned to listen. True: ours is up. False:
        ours exited because another one (started meanwhile by someone else)
        holds the pid file, and that one is listening: reuse it."""
        proc = self._procs[name]
        deadline = time.monotonic() + timeout
        while True:
            up = any(_socket_alive(p) for p in paths)
            if proc.poll() is not None:
                self._procs.pop(name)
                if up:
                    return False
                raise LibvirtError(f"{name} exited with {proc.returncode}\n{self.log_tail()}")
            if up and self._pidfile_pid(name) == proc.pid:
                return True
            if time.monotonic() > deadline:
                raise LibvirtError(f"{name}: not listening on {paths} after {timeout}s\n"
                                   f"{self.log_tail()}")
            time.sleep(0.02)

    @staticmethod
    def _pidfile_pid(name: str) -> int | None:
        try:
            with open(f"/run/{name}.pid") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _wait_connect(self):
        import libvirt
        deadline = time.monotonic() + self.connect_timeout
        while True:
            self._check_alive("libvirtd")
            if any(_socket_alive(p) for p in LIBVIRTD_SOCKETS):
                try:
                    # The first open on a fresh machine blocks while libvirtd probes QEMU.
                    return libvirt.open(self.uri)
                except libvirt.libvirtError as e:
                    last = e
            else:
                last = "no socket yet"
            if time.monotonic() > deadline:
                raise LibvirtError(f"{self.uri} did not connect in {self.connect_timeout}s: "
                                   f"{last}\n{self.log_tail()}")
            time.sleep(0.05)

    @staticmethod
    def _qemu_pid(name: str) -> int | None:
        try:
            with open(os.path.join(QEMU_PID_DIR, f"{name}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _destroy(self, dom) -> None:
        import libvirt
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError:
            pass

    def _undefine(self, dom) -> None:
        import libvirt
        try:
            if dom.isPersistent():
                dom.undefine()
        except libvirt.libvirtError:
            pass

    def _cleanup_domains(self) -> None:
        import libvirt
        if not any(_socket_alive(p) for p in LIBVIRTD_SOCKETS):
            return
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError:
            return
        leftover_pids = []
        initial = self._initial_defined
        if initial is None:
            if not self.owns_libvirtd:
                conn.close()
                return   # start() failed before it saw what was there: touch nothing
            initial = set()
        try:
            for dom in conn.listAllDomains():
                name = dom.name()
                if not (self.owns_libvirtd or name.startswith(self.cleanup_prefix)):
                    continue
                if dom.isActive():
                    pid = self._qemu_pid(name)
                    self._destroy(dom)
                    if pid is not None:
                        leftover_pids.append(pid)
                if name not in initial:
                    self._undefine(dom)
        finally:
            conn.close()
        # destroy() waits for QEMU to exit; belt and braces for one that did not.
        deadline = time.monotonic() + 10
        for pid in leftover_pids:
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# -- files QEMU may open -------------------------------------------------------

def shareable_dir(path: str) -> str:
    """Create `path` and make it and every parent searchable by others (o+x) so
    the libvirt-qemu user can reach files in it. Returns the absolute path."""
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    p = os.path.dirname(path)
    while p != "/":
        mode = os.stat(p).st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(p, stat.S_IMODE(mode) | stat.S_IXOTH)
        p = os.path.dirname(p)
    return path


def make_config_drive(path: str, meta_data: dict, files: dict[str, bytes] | None = None) -> str:
    """An OpenStack-style config drive ISO (label config-2) holding
    openstack/latest/meta_data.json (+ `files`: relative path -> content)."""
    with tempfile.TemporaryDirectory() as d:
        latest = os.path.join(d, "openstack", "latest")
        os.makedirs(latest)
        with open(os.path.join(latest, "meta_data.json"), "w") as f:
            json.dump(meta_data, f)
        for rel, content in (files or {}).items():
            target = os.path.join(d, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(content)
        subprocess.run(["genisoimage", "-o", path, "-V", "config-2", "-J", "-r", "-quiet", d],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
    os.chmod(path, 0o644)
    return path


def make_blank_qcow2(path: str, size: str = "64M") -> str:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, size],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    os.chmod(path, 0o644)
    return path


def domain_xml(name: str, kernel: str, initrd: str, console_log: str, config_drive: str | None = None,
               root_disk: str | None = None, memory_mib: int = 256, vcpus: int = 1,
               uuid: str | None = None, cmdline: str = "console=ttyS0") -> str:
    """A QEMU/TCG domain booting `kernel`+`initrd` directly, console on a file.
    Layout as nimbus' libvirt driver uses it: root disk virtio `vda`, config
    drive an IDE CD-ROM `hdd` (i440fx machine, so the guest's ata_piix sees it)."""
    disks = []
    if root_disk:
        disks.append(f"""\
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file={quoteattr(root_disk)}/>
      <target dev='vda' bus='virtio'/>
    </disk>""")
    if config_drive:
        disks.append(f"""\
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file={quoteattr(config_drive)}/>
      <target dev='hdd' bus='ide'/>
      <readonly/>
    </disk>""")
    disk_xml = "\n".join(disks)
    return f"""\
<domain type='qemu'>
  <name>{escape(name)}</name>
  <uuid>{uuid or uuidlib.uuid4()}</uuid>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(kernel)}</kernel>
    <initrd>{escape(initrd)}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{disk_xml}
    <serial type='file'>
      <source path={quoteattr(console_log)}/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
"""


# -- the serial console --------------------------------------------------------

def console_lines(path: str) -> list[str]:
    """The serial log's lines (CR stripped; [] if the file is not there yet).
    libvirt creates it root 0600: the reader must be root."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [line.rstrip("\r") for line in data.decode("utf-8", errors="replace").split("\n")]


def meta_from_console(lines: list[str]) -> dict | None:
    """The JSON the guest printed between META_BEGIN and META_END (None: not yet)."""
    try:
        begin = lines.index(META_BEGIN)
        end = lines.index(META_END, begin)
    except ValueError:
        return None
    return json.loads("\n".join(lines[begin + 1:end]))


def wait_for_console(path: str, predicate, timeout: float = 60.0, interval: float = 0.1,
                     alive=None) -> list[str]:
    """Poll the serial log until predicate(lines) is true; returns the lines.
    `alive()` (optional) returning False aborts early (e.g. the domain died)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = console_lines(path)
        if predicate(lines):
            return lines
        if alive is not None and not alive():
            raise TimeoutError(f"guest died; console so far:\n" + "\n".join(lines[-60:]))
        if any(l.startswith(META_ERROR) for l in lines):
            raise RuntimeError("guest reported an error; console:\n" + "\n".join(lines[-60:]))
        if time.monotonic() > deadline:
            raise TimeoutError(f"console {path}: condition not met in {timeout:.1f}s:\n"
                               + "\n".join(lines[-60:]))
        time.sleep(interval)


# -- the tiny guest ------------------------------------------------------------

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# Modules /init loads (with their dependencies, in dependency order): virtio PCI
# transport, virtio disk + NIC, the PIIX IDE controller (i440fx), SCSI disks and
# CD-ROMs, ISO9660. Optional ones are taken when the kernel has them.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ata_piix", "sr_mod", "sd_mod", "isofs")
OPTIONAL_GUEST_MODULES = ("virtio_scsi", "ahci")

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
for m in $(cat /modules.order); do
    insmod "/lib/modules/$m" || echo "nimbus-init: insmod $m failed"
done
echo "@GUEST_MARKER@"
echo "NIMBUS-KERNEL $(uname -r)"

# The config drive: the block device whose ISO9660 volume label is config-2
# (Debian's busybox-static has findfs but no blkid; the fallback reads the
# volume id from the primary volume descriptor: sector 16, bytes 40..71).
# Disks appear asynchronously after the drivers load: retry for ~20 s.
iso_label() {
    dd if="$1" bs=2048 skip=16 count=1 2>/dev/null | dd bs=1 skip=40 count=32 2>/dev/null | tr -d ' \0'
}
dev=""
i=0
while [ -z "$dev" ] && [ $i -lt 100 ]; do
    dev=$(findfs LABEL=config-2 2>/dev/null)
    if [ -z "$dev" ]; then
        for d in /dev/sr* /dev/hd? /dev/sd? /dev/vd?; do
            [ -b "$d" ] || continue
            if [ "$(iso_label "$d")" = "config-2" ]; then dev=$d; break; fi
        done
    fi
    [ -n "$dev" ] || sleep 0.2
    i=$((i + 1))
done
echo "NIMBUS-BLOCK-DEVICES $(ls /sys/block | tr '\n' ' ')"
mkdir -p /mnt/config
if [ -z "$dev" ]; then
    echo "@META_ERROR@ no config-2 device"
elif ! mount -t iso9660 -o ro "$dev" /mnt/config; then
    echo "@META_ERROR@ mount $dev failed"
elif [ ! -f /mnt/config/openstack/latest/meta_data.json ]; then
    echo "@META_ERROR@ no openstack/latest/meta_data.json on $dev"
else
    echo "NIMBUS-CONFIG-DRIVE $dev"
    echo "@META_BEGIN@"
    cat /mnt/config/openstack/latest/meta_data.json
    echo
    echo "@META_END@"
fi
# /init must never exit (the kernel would panic): the domain stays RUNNING.
# It says on the console whenever its disks change (hot attach and detach).
last=$(ls /sys/block | tr '\n' ' ')
while true; do
    sleep 1
    now=$(ls /sys/block | tr '\n' ' ')
    if [ "$now" != "$last" ]; then echo "NIMBUS-BLOCK-DEVICES $now"; last=$now; fi
done
"""
BUILD_RECIPE_VERSION = "2"


@dataclass(frozen=True)
class GuestFiles:
    kernel: str
    initramfs: str
    kernel_package: str = ""
    kernel_version: str = ""
    busybox_version: str = ""
    build_seconds: float = 0.0      # 0.0: taken from the cache
    cached: bool = False

    @property
    def size_bytes(self) -> int:
        return os.path.getsize(self.kernel) + os.path.getsize(self.initramfs)


class GuestBuildError(RuntimeError):
    pass


def _run(*args: str, cwd: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd)
    if proc.returncode != 0:
        raise GuestBuildError(f"{' '.join(args)} failed ({proc.returncode}): "
                              f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _candidates(*packages: str) -> dict[str, str | None]:
    """{package: candidate version or None} from one `apt-cache policy` call."""
    out = _run("apt-cache", "policy", *packages)
    found: dict[str, str | None] = {p: None for p in packages}
    for m in re.finditer(r"^(\S+):\n\s*Installed:.*\n\s*Candidate:\s*(\S+)", out, re.M):
        if m.group(1) in found and m.group(2) != "(none)":
            found[m.group(1)] = m.group(2)
    return found


def _package_versions() -> tuple[str, str, str]:
    """(linux-image-6.1.0-N-cloud-amd64 that linux-image-cloud-amd64's
    candidate depends on, its version, busybox-static's candidate version)."""
    out = _run("apt-cache", "show", "--no-all-versions", KERNEL_META_PACKAGE, BUSYBOX_PACKAGE)
    stanzas = {}
    for block in out.split("\n\n"):
        m = re.search(r"^Package:\s*(\S+)", block, re.M)
        if m:
            stanzas[m.group(1)] = block
    meta, bb = stanzas.get(KERNEL_META_PACKAGE, ""), stanzas.get(BUSYBOX_PACKAGE, "")
    dep = re.search(r"^Depends:.*?\b(linux-image-[0-9][^\s,()]*-cloud-amd64)\s*(?:\(=\s*([^)\s]+)\))?",
                    meta, re.M)
    bb_ver = re.search(r"^Version:\s*(\S+)", bb, re.M)
    if not dep or not bb_ver:
        raise GuestBuildError(f"no candidate for {KERNEL_META_PACKAGE}'s kernel or {BUSYBOX_PACKAGE} "
                              f"(run apt-get update?): {out.strip()[:500]!r}")
    kernel_pkg, kernel_ver = dep.group(1), dep.group(2)
    if kernel_ver is None:
        kernel_ver = _candidates(kernel_pkg)[kernel_pkg]
        if kernel_ver is None:
            raise GuestBuildError(f"no candidate for {kernel_pkg} (run apt-get update?)")
    return kernel_pkg, kernel_ver, bb_ver.group(1)


def _recipe_hash() -> str:
    """Changes whenever what goes into the initramfs changes."""
    return hashlib.sha256((INIT_SCRIPT + BUILD_RECIPE_VERSION + ",".join(GUEST_MODULES)
                           + ",".join(OPTIONAL_GUEST_MODULES)).encode()).hexdigest()[:10]


def _cache_key(kernel_pkg: str, kernel_ver: str, busybox_ver: str) -> str:
    raw = f"{kernel_pkg}_{kernel_ver}_busybox_{busybox_ver}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", raw) + "_" + _recipe_hash()


def _newest_cached(cache_dir: str) -> str | None:
    built = glob.glob(os.path.join(cache_dir, f"*_{_recipe_hash()}", "manifest.json"))
    return os.path.dirname(max(built, key=os.path.getmtime)) if built else None


def _read_guest(dirpath: str, cached: bool) -> GuestFiles:
    with open(os.path.join(dirpath, "manifest.json")) as f:
        m = json.load(f)
    return GuestFiles(kernel=os.path.join(dirpath, "vmlinuz"),
                      initramfs=os.path.join(dirpath, "initramfs.gz"),
                      kernel_package=m["kernel_package"], kernel_version=m["kernel_version"],
                      busybox_version=m["busybox_version"],
                      build_seconds=0.0 if cached else m["build_seconds"], cached=cached)


def build_guest(cache_dir: str) -> GuestFiles:
    """The tiny guest's kernel + initramfs, built once per (kernel, busybox)
    package versions into cache_dir/<key>/ (atomically: a half-built guest is
    never seen). If apt cannot tell the versions (no `apt-get update` yet) or
    cannot download them (stale package lists), the newest guest already in the
    cache built by this same recipe is used instead."""
    cache_dir = shareable_dir(cache_dir)
    try:
        kernel_pkg, kernel_ver, busybox_ver = _package_versions()
    except GuestBuildError:
        fallback = _newest_cached(cache_dir)
        if fallback:
            return _read_guest(fallback, cached=True)
        raise
    target = os.path.join(cache_dir, _cache_key(kernel_pkg, kernel_ver, busybox_ver))
    if os.path.exists(os.path.join(target, "manifest.json")):
        return _read_guest(target, cached=True)
    try:
        _build(target, kernel_pkg, kernel_ver, busybox_ver)
    except GuestBuildError:
        fallback = _newest_cached(cache_dir)
        if fallback:
            return _read_guest(fallback, cached=True)
        raise
    return _read_guest(target, cached=False)


def _build(target: str, kernel_pkg: str, kernel_ver: str, busybox_ver: str) -> None:
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(target))
    try:
        # Sandbox user root: _apt cannot write into a root-owned 0700 work dir.
        _run("apt-get", "download", "-o", "APT::Sandbox::User=root",
             f"{kernel_pkg}={kernel_ver}", f"{BUSYBOX_PACKAGE}={busybox_ver}", cwd=work)
        kdeb = glob.glob(os.path.join(work, f"{kernel_pkg}_*.deb"))
        bdeb = glob.glob(os.path.join(work, f"{BUSYBOX_PACKAGE}_*.deb"))
        if len(kdeb) != 1 or len(bdeb) != 1:
            raise GuestBuildError(f"apt-get download left {os.listdir(work)}")
        kroot, broot = os.path.join(work, "k"), os.path.join(work, "b")
        _run("dpkg-deb", "-x", kdeb[0], kroot)
        _run("dpkg-deb", "-x", bdeb[0], broot)

        vmlinuz = glob.glob(os.path.join(kroot, "boot", "vmlinuz-*"))
        if len(vmlinuz) != 1:
            raise GuestBuildError(f"no single vmlinuz in {kdeb[0]}: {vmlinuz}")
        release = os.path.basename(vmlinuz[0])[len("vmlinuz-"):]
        modules = _module_closure(os.path.join(kroot, "lib", "modules", release))
        busybox = os.path.join(broot, "bin", "busybox")
        if not os.path.exists(busybox):
            raise GuestBuildError(f"no bin/busybox in {bdeb[0]}")

        out = os.path.join(work, "out")
        os.makedirs(out)
        shutil.copyfile(vmlinuz[0], os.path.join(out, "vmlinuz"))
        with open(os.path.join(out, "initramfs.gz"), "wb") as f:
            f.write(_initramfs(busybox, modules))
        for name in ("vmlinuz", "initramfs.gz"):
            os.chmod(os.path.join(out, name), 0o644)
        manifest = {"kernel_package": kernel_pkg, "kernel_version": kernel_ver,
                    "kernel_release": release, "busybox_version": busybox_ver,
                    "modules": [name for name, _ in modules],
                    "build_seconds": round(time.monotonic() - started, 3)}
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        os.chmod(out, 0o755)
        try:
            os.rename(out, target)
        except OSError:
            if not os.path.exists(os.path.join(target, "manifest.json")):
                raise
            # Someone else built the same guest meanwhile: theirs is as good.
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ko_depends(data: bytes) -> list[str]:
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    if not m:
        return []
    return [d.decode() for d in m.group(1).split(b",") if d]


def _module_closure(moddir: str) -> list[tuple[str, bytes]]:
    """[(name.ko, uncompressed bytes)] of GUEST_MODULES (+ optional ones present)
    and their dependencies, dependencies first."""
    index: dict[str, str] = {}
    for path in glob.glob(os.path.join(moddir, "kernel", "**", "*.ko*"), recursive=True):
        base = os.path.basename(path)
        name = re.sub(r"\.ko(\.xz|\.gz|\.zst)?$", "", base).replace("-", "_")
        index[name] = path
    wanted = list(GUEST_MODULES) + [m for m in OPTIONAL_GUEST_MODULES if m in index]
    missing = [m for m in GUEST_MODULES if m not in index]
    if missing:
        raise GuestBuildError(f"kernel modules {missing} not in {moddir} (built in? "
                              f"see modules.builtin)")
    loaded: dict[str, bytes] = {}
    order: list[str] = []

    def load(name: str, stack: tuple[str, ...]) -> None:
        if name in loaded:
            return
        if name in stack:
            raise GuestBuildError(f"module dependency cycle: {stack + (name,)}")
        path = index.get(name)
        if path is None:
            raise GuestBuildError(f"module {name} (needed by {stack[-1]}) not found")
        if path.endswith(".xz"):
            with lzma.open(path) as f:
                data = f.read()
        elif path.endswith(".gz"):
            with gzip.open(path) as f:
                data = f.read()
        elif path.endswith(".zst"):
            raise GuestBuildError(f"{path}: zstd-compressed modules are not supported")
        else:
            with open(path, "rb") as f:
                data = f.read()
        for dep in _ko_depends(data):
            load(dep, stack + (name,))
        loaded[name] = data
        order.append(name)

    for name in wanted:
        load(name, ())
    return [(f"{name}.ko", loaded[name]) for name in order]


def _cpio_newc(entries: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A newc cpio archive of (path, mode, data, rdevmajor, rdevminor), owned by root."""
    buf = io.BytesIO()
    ino = 1

    def pad4(n: int) -> None:
        buf.write(b"\0" * (-n % 4))

    for path, mode, data, rmaj, rmin in entries + [("TRAILER!!!", 0, b"", 0, 0)]:
        name = path.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name), 0)
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        buf.write(header)
        buf.write(name)
        pad4(len(header) + len(name))
        buf.write(data)
        pad4(len(data))
        ino += 1
    return buf.getvalue()


def _initramfs(busybox: str, modules: list[tuple[str, bytes]]) -> bytes:
    with open(busybox, "rb") as f:
        bb = f.read()
    init = (INIT_SCRIPT.replace("@GUEST_MARKER@", GUEST_MARKER)
            .replace("@META_BEGIN@", META_BEGIN).replace("@META_END@", META_END)
            .replace("@META_ERROR@", META_ERROR)).encode()
    d, x, r = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFREG | 0o644
    entries = [(p, d, b"", 0, 0) for p in ("bin", "dev", "proc", "sys", "mnt", "tmp", "lib",
                                            "lib/modules")]
    # /dev/console before devtmpfs is mounted: the kernel opens it for init's stdio.
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", 5, 1))
    entries.append(("bin/busybox", x, bb, 0, 0))
    entries.append(("bin/sh", stat.S_IFLNK | 0o777, b"busybox", 0, 0))
    entries.append(("init", x, init, 0, 0))
    entries.append(("modules.order", r, "".join(f"{n}\n" for n, _ in modules).encode(), 0, 0))
    for name, data in modules:
        entries.append((f"lib/modules/{name}", r, data, 0, 0))
    return gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0)


async def upload_guest(stack, guest_files, state_dir: str) -> None:
    """The guest as nimbus images (kernel, ramdisk, a blank root disk that
    boots them directly) and its flavor g1.tiny (256 MB)."""
    from stack import make_qcow2
    await stack.flavor("g1.tiny", vcpus=1, ram_mb=256, disk_gb=1)
    kernel = await stack.image(guest_files.kernel, name="guest-kernel", disk_format="aki")
    ramdisk = await stack.image(guest_files.initramfs, name="guest-ramdisk", disk_format="ari")
    await stack.image(make_qcow2(os.path.join(state_dir, "root.qcow2"), "64M"), name="guest",
                      properties={"kernel_id": kernel.id, "ramdisk_id": ramdisk.id,
                                  "os_command_line": "console=ttyS0"})
