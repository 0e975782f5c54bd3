"""Guests as local processes, for the libvirt test driver (no guest OS).

Chosen over starting them from the compute agent: services/agent is being
split by another engineer, and DatabaseService already knows everything a
guest needs. When `--guest-launch local` (make run, the tests), the task
manager writes the guest's config-drive directory (the same
openstack/latest/meta_data.json + content files the server's real config
drive gets) when it creates the server, and starts
`python -m nimbus.services.guestagent` once the server is ACTIVE, in its own
session (process group), with its own data directory:

    <guest_dir>/<guest id>/config-drive/   what the config drive holds
    <guest_dir>/<guest id>/datastore/      the datastore's files (in a VM: the volume)
    <guest_dir>/<guest id>/agent.pid, agent.log

`destroy` kills the whole process group (the agent and its datastore, even
if the agent died first) and removes the directory. Directories are 0711 so
the unprivileged datastore user can reach its own data.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys

from nimbus import log

_log = log.get("nimbus.database.simulation")


class LocalGuests:
    def __init__(self, guest_dir: str, heartbeat: float = 1.0):
        self.root = os.path.abspath(guest_dir)
        self.heartbeat = heartbeat
        self.children: dict[str, subprocess.Popen] = {}
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o711)

    def dir(self, guest_id: str) -> str:
        return os.path.join(self.root, guest_id)

    def write_config_drive(self, guest_id: str, meta: dict, files: list[tuple[str, bytes]]) -> None:
        base = os.path.join(self.dir(guest_id), "config-drive", "openstack")
        os.makedirs(os.path.join(base, "latest"), exist_ok=True)
        os.makedirs(os.path.join(base, "content"), exist_ok=True)
        os.chmod(self.dir(guest_id), 0o711)
        meta = {**meta, "files": [{"path": p, "content_path": f"/content/{i:04d}"}
                                  for i, (p, _) in enumerate(files)]}
        for i, (_, data) in enumerate(files):
            path = os.path.join(base, "content", f"{i:04d}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        with open(os.path.join(base, "latest", "meta_data.json"), "w") as f:
            json.dump(meta, f)

    def _pid(self, guest_id: str) -> int | None:
        try:
            with open(os.path.join(self.dir(guest_id), "agent.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        """Does any process of the group live? Zombies do not count: a guest
        whose parent has not reaped it yet (a DatabaseService stopped and
        started again in one process) is gone, and killpg(0) would say not."""
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if int(pgrp) == pgid and state != "Z":
                return True
        return False

    @staticmethod
    def _alive(pid: int, child: subprocess.Popen | None) -> bool:
        if child is not None:
            return child.poll() is None
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def running(self, guest_id: str) -> bool:
        child = self.children.get(guest_id)
        if child is not None:
            return child.poll() is None
        pid = self._pid(guest_id)
        return pid is not None and self._group_alive(pid)

    def ensure_running(self, guest_id: str) -> None:
        if self.running(guest_id):
            return
        base = self.dir(guest_id)
        if not os.path.isdir(os.path.join(base, "config-drive")):
            raise RuntimeError(f"guest {guest_id} has no config drive directory")
        out = open(os.path.join(base, "agent.log"), "ab")
        child = subprocess.Popen(
            [sys.executable, "-m", "nimbus.services.guestagent", "--config-drive",
             os.path.join(base, "config-drive"), "--root", os.path.join(base, "datastore"),
             "--heartbeat", str(self.heartbeat)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            env={**os.environ, "NIMBUS_LOG_FORMAT": "console",
                 "NIMBUS_DATASTORE_TEMPLATES": self.root + "-templates"})
        out.close()
        self.children[guest_id] = child
        with open(os.path.join(base, "agent.pid"), "w") as f:
            f.write(str(child.pid))
        _log.info("guest agent started", guest_id=guest_id, pid=child.pid)

    async def destroy(self, guest_id: str) -> None:
        child = self.children.pop(guest_id, None)
        pgid = child.pid if child is not None else self._pid(guest_id)
        if pgid is not None:
            # SIGTERM to the agent alone when it lives: it stops its datastore
            # and lets a running initdb finish (killed mid-way, initdb leaves
            # shared memory segments in /dev/shm). An orphaned datastore
            # (the agent died first) gets it directly. SIGKILL for the rest.
            for sig, wait in ((signal.SIGTERM, 25.0), (signal.SIGKILL, 5.0)):
                try:
                    if sig == signal.SIGTERM and self._alive(pgid, child):
                        os.kill(pgid, sig)
                    else:
                        os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                for _ in range(int(wait / 0.05)):
                    if child is not None:
                        child.poll()
                    if not self._group_alive(pgid):
                        break
                    await asyncio.sleep(0.05)
                else:
                    continue
                break
        if child is not None:
            try:
                child.wait(1)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.dir(guest_id), ignore_errors=True)

    async def close(self) -> None:
        """At shutdown the guests keep running (a restarted service adopts them)."""
        self.children.clear()


def stop_all(guest_dir: str, grace: float = 15.0) -> None:
    """Stop every local guest under guest_dir (make run's Ctrl-C): SIGTERM to
    each agent (it stops its datastore cleanly), SIGKILL to what is left of
    its process group after `grace`. Their data directories stay."""
    import time
    groups = []
    for name in os.listdir(guest_dir) if os.path.isdir(guest_dir) else ():
        try:
            with open(os.path.join(guest_dir, name, "agent.pid")) as f:
                groups.append(int(f.read()))
        except (OSError, ValueError):
            continue
    for pgid in groups:
        try:
            os.kill(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        groups = [g for g in groups if LocalGuests._group_alive(g)]
        time.sleep(0.1)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

