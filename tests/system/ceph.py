"""A throwaway single-node Ceph for system tests: 1 mon + 1 memstore OSD.

Everything lives under `root_dir` (ceph.conf, mon store, OSD dir, pid files,
admin sockets, logs: `root_dir/log/*.log` and each daemon's stdout/stderr in
`root_dir/log/<name>.out`). The monitor listens on 127.0.0.1 on a port picked
at run time, msgr2 only. No daemon is left behind: `stop()` SIGKILLs every
process group it started (memstore keeps nothing worth flushing), an atexit
hook does the same if the caller forgets, and every daemon gets
PR_SET_PDEATHSIG=SIGKILL so it dies with the process that started it even if
that process is SIGKILLed (call `start()` from a thread that outlives the
cluster, e.g. the main thread: the death signal follows the starting thread).

Auth is `none`: the cluster is reachable only on loopback and dies with the
test session, and without cephx neither the backend nor libvirt needs a
keyring/secret (nimbus' DiskSource carries no auth, so a cephx cluster would
test a path the driver cannot express yet).

Pools `images` and `vms` are created (size 1, 8 PGs) and initialised for RBD.
The cluster is driven through the `rados`/`rbd` Python bindings rather than the
`ceph`/`rbd` CLIs (each CLI call costs ~0.3 s of Python start-up); the only
external commands are monmaptool, ceph-mon and ceph-osd.

Settings that matter (see /work/shared/RECIPES.md, "Ceph"): msgr2 only,
pool size 1 allowed, chooseleaf type 0 (one host), and
`paxos_propose_interval = 0.01` (the default 1 s makes every pool operation
cost a second). `rbd_default_clone_format = 1` pins the clone semantics the
backend must cope with (clone only from a protected snapshot, unprotect fails
while clones exist): v2 is more lenient, so v1 is the stricter test.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

from nimbus.etcd import free_port

BINARIES = ("monmaptool", "ceph-mon", "ceph-osd")
MODULES = ("rados", "rbd")
POOLS = ("images", "vms")


def missing_requirements() -> list[str]:
    """What this machine lacks to run a CephCluster (empty: nothing)."""
    missing = []
    binaries = [b for b in BINARIES if shutil.which(b) is None]
    if binaries:
        missing.append(f"binaries {', '.join(binaries)} "
                       f"(apt-get install ceph-mon ceph-osd ceph-common)")
    for m in MODULES:
        try:
            __import__(m)
        except ImportError as e:
            missing.append(f"python module {m} ({e}; apt-get install python3-{m} and run "
                           f"tools/link-ceph-modules.sh VENV)")
    return missing


def _die_with_parent() -> None:
    # In the child between fork and exec: SIGKILL when the parent goes away.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class CephError(RuntimeError):
    pass


class CephCluster:
    def __init__(self, root_dir: str, memstore_bytes: int = 4 << 30, pg_num: int = 8):
        self.root_dir = os.path.abspath(root_dir)
        self.memstore_bytes = memstore_bytes
        self.pg_num = pg_num
        self.conf_path = os.path.join(self.root_dir, "ceph.conf")
        self.log_dir = os.path.join(self.root_dir, "log")
        self.run_dir = os.path.join(self.root_dir, "run")
        self.fsid = str(uuid.uuid4())
        self.port = 0
        self.monitors: list[tuple[str, int]] = []
        self.pools = POOLS
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen] = {}
        self._outs: list = []
        self._rados = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> "CephCluster":
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _start(self) -> None:
        import rados
        for attempt in range(3):
            self._prepare()
            self._mon_mkfs()
            self._spawn("mon.a", ["ceph-mon", "-f", "-c", self.conf_path, "-i", "a"])
            try:
                self._rados = rados.Rados(conffile=self.conf_path)
                self._rados.connect(timeout=10)
                break
            except Exception as e:
                # Most likely the free port was taken before the mon bound it.
                tail = self.log_tail("mon.a")
                self.stop()
                if attempt == 2:
                    raise CephError(f"ceph-mon did not come up: {e}\n{tail}")
        self._start_osd()
        for pool in self.pools:
            self._create_pool(pool)

    def stop(self) -> None:
        if self._rados is not None:
            try:
                self._rados.shutdown()
            except Exception:
                pass
            self._rados = None
        for name, proc in self._procs.items():
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the daemon and any child it forked
            except ProcessLookupError:
                pass
            proc.wait()
        self._procs.clear()
        for out in self._outs:
            out.close()
        self._outs.clear()

    def __enter__(self) -> "CephCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests --------------------------------------------------

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values()]

    def mon_command(self, prefix: str, timeout: float = 30, **args) -> object:
        """A mon command (`ceph <prefix> ...`) as parsed JSON (None if it has no output)."""
        cmd = json.dumps({"prefix": prefix, "format": "json", **args})
        ret, out, err = self._rados.mon_command(cmd, b"", timeout=timeout)
        if ret != 0:
            raise CephError(f"ceph {prefix} {args}: {err} (rc {ret})")
        return json.loads(out) if out.strip() else None

    def log_tail(self, name: str, lines: int = 40) -> str:
        chunks = []
        for path in (os.path.join(self.log_dir, f"{name}.out"),
                     os.path.join(self.log_dir, f"ceph-{name}.log")):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    chunks.append(f"--- {path}\n" + "".join(f.readlines()[-lines:]))
        return "\n".join(chunks)

    # -- bring-up -----------------------------------------------------------

    def _prepare(self) -> None:
        self.port = free_port()
        self.monitors = [("127.0.0.1", self.port)]
        for d in ("mon", "osd"):
            shutil.rmtree(os.path.join(self.root_dir, d), ignore_errors=True)
        for d in (self.log_dir, self.run_dir, os.path.join(self.root_dir, "mon"),
                  os.path.join(self.root_dir, "osd")):
            os.makedirs(d, exist_ok=True)
        r = self.root_dir
        conf = f"""\
[global]
fsid = {self.fsid}
mon_host = [v2:127.0.0.1:{self.port}]
public_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_msgr2 = true
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = {r}/keyring
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
run_dir = {r}/run
admin_socket = {r}/run/$name.asok
pid_file = {r}/run/$name.pid
log_file = {r}/log/$cluster-$name.log
mon_data = {r}/mon/$cluster-$id
osd_data = {r}/osd/$cluster-$id
# Fail a test instead of hanging it when the cluster is gone.
client_mount_timeout = 15
rados_mon_op_timeout = 60
rados_osd_op_timeout = 60
rbd_default_clone_format = 1

[mon]
paxos_propose_interval = 0.01

[osd]
osd_objectstore = memstore
memstore_device_bytes = {self.memstore_bytes}
osd_data_size_check = false
"""
        with open(self.conf_path, "w") as f:
            f.write(conf)
        # An empty keyring keeps clients from warning about a missing one.
        open(os.path.join(r, "keyring"), "w").close()

    def _run(self, *args: str) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise CephError(f"{' '.join(args)} failed ({proc.returncode}): "
                            f"{proc.stderr.strip() or proc.stdout.strip()}")

    def _mon_mkfs(self) -> None:
        monmap = os.path.join(self.root_dir, "monmap")
        self._run("monmaptool", "--create", "--clobber", "--fsid", self.fsid,
                  "--addv", "a", f"[v2:127.0.0.1:{self.port}]", monmap)
        self._run("ceph-mon", "-c", self.conf_path, "--mkfs", "-i", "a", "--monmap", monmap)

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(os.path.join(self.log_dir, f"{name}.out"), "ab")
        self._outs.append(out)
        self._procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)

    def _start_osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        osd_id = self.mon_command("osd new", uuid=osd_uuid)["osdid"]
        os.makedirs(os.path.join(self.root_dir, "osd", f"ceph-{osd_id}"), exist_ok=True)
        self._run("ceph-osd", "-c", self.conf_path, "-i", str(osd_id), "--mkfs",
                  "--osd-uuid", osd_uuid)
        self._spawn(f"osd.{osd_id}", ["ceph-osd", "-f", "-c", self.conf_path, "-i", str(osd_id)])
        deadline = time.monotonic() + 60
        while True:
            dump = self.mon_command("osd dump")
            if any(o["osd"] == osd_id and o["up"] for o in dump["osds"]):
                return
            proc = self._procs[f"osd.{osd_id}"]
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CephError(f"osd.{osd_id} did not come up (rc {proc.returncode})\n"
                                f"{self.log_tail(f'osd.{osd_id}')}")
            time.sleep(0.05)

    def _create_pool(self, pool: str) -> None:
        import rbd
        self.mon_command("osd pool create", pool=pool, pg_num=self.pg_num, pgp_num=self.pg_num)
        # What `rbd pool init` does: tag the pool for rbd and write its rbd_info object
        # (the write blocks until the pool's PGs are active, so the pool is usable after).
        with self._rados.open_ioctx(pool) as ioctx:
            rbd.RBD().pool_init(ioctx, True)
