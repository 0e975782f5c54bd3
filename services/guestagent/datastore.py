"""The datastore plug-in interface of the guest agent, and what every
plug-in shares: running the server process as an unprivileged user, waiting
for it, and remembering what prepare chose (state.json).

A plug-in (postgresql.py, mariadb.py) owns one directory:

    <root>/data        the datastore's files (the volume's mount point in a VM)
    <root>/run         sockets and pid files
    <root>/admin.pw    the agent's own admin password (0600, random, never sent)
    <root>/state.json  {"port": N} once prepared

The datastore runs as the user `NIMBUS_DATASTORE_USER` (default nimbus-db,
created by `make venv`) when the agent is root: PostgreSQL refuses to run as
root, and neither should MariaDB. setpriv execs, so the server is the
agent's direct child and its death is seen at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import signal

from nimbus.database.v1 import database_pb2 as D
from nimbus.etcd import free_port
from nimbus.database.v1 import guest_pb2 as G


# Replication accounts are nimbus_repl_<replica>: one per replica, so a new
# replica never resets the password an existing one reconnects with.
REPLICATION_PREFIX = "nimbus_repl"


class DatastoreError(Exception):
    """A datastore operation failed; `code` is the gRPC status name for the user."""

    def __init__(self, message: str, code: str = "FAILED_PRECONDITION"):
        super().__init__(message)
        self.code = code


def run_as() -> tuple[int, int] | None:
    """(uid, gid) to drop to, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("NIMBUS_DATASTORE_USER", "nimbus-db")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise DatastoreError(f"the datastore user {name!r} does not exist "
                             f"(useradd --system {name}; make venv creates it)") from None
    return entry.pw_uid, entry.pw_gid


def privileged(argv: list[str]) -> list[str]:
    ids = run_as()
    if ids is None:
        return argv
    return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", *argv]


def chown(path: str) -> None:
    ids = run_as()
    if ids is not None:
        os.chown(path, *ids)


async def run(argv: list[str], *, env: dict | None = None, stdin: bytes | None = None,
              timeout: float = 60) -> str:
    """Run a command; its stdout, or DatastoreError with its stderr."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})}, cwd="/")
    except OSError as exc:
        raise DatastoreError(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise DatastoreError(f"{os.path.basename(argv[0])} timed out") from None
    if proc.returncode != 0:
        lines = [line for line in err.decode(errors="replace").strip().splitlines()
                 if "ERROR" in line or "FATAL" in line or "error" in line] or \
            err.decode(errors="replace").strip().splitlines()
        raise DatastoreError(" | ".join(lines[-3:]) if lines else f"{argv[0]} exited {proc.returncode}")
    return out.decode()


class Datastore:
    """One datastore on this guest. Subclasses fill in the SQL and the commands."""

    manager = ""
    root_user = ""
    default_port = 0

    def __init__(self, root: str, port: int = 0):
        self.root = os.path.abspath(root)
        self.data = os.path.join(self.root, "data")
        self.rundir = os.path.join(self.root, "run")
        self.requested_port = port
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        state = self._state()
        if state:
            self.port = state["port"]

    # ---- what plug-ins implement ------------------------------------------

    async def initialise(self, admin_password: str) -> None:
        raise NotImplementedError

    def server_argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Cheap (no process spawned): does the server say it accepts connections?"""
        raise NotImplementedError

    async def ping(self) -> bool:
        raise NotImplementedError

    async def secure(self, admin_password: str) -> None:
        """After the first start: the admin account, nothing else remote."""

    async def create_databases(self, databases) -> None:
        raise NotImplementedError

    async def delete_database(self, name: str) -> None:
        raise NotImplementedError

    async def provision(self, databases, users: list[G.GuestUser]) -> None:
        """Prepare's databases, then its users (whose databases are among
        them: the API checks it): plug-ins do both in one client session."""
        await self.create_databases(databases)
        await self.create_users(users)

    async def prepare_ahead(self) -> None:
        """After an empty prepare (a warm-pool guest's, claimed later): what a
        later prepare's databases would wait for, done now."""

    async def list_databases(self) -> list[D.DatabaseSpec]:
        raise NotImplementedError

    async def create_users(self, users: list[G.GuestUser]) -> None:
        raise NotImplementedError

    async def delete_user(self, name: str, host: str) -> None:
        raise NotImplementedError

    async def list_users(self) -> list[D.UserSpec]:
        raise NotImplementedError

    async def grant(self, user: str, host: str, databases: list[str]) -> None:
        raise NotImplementedError

    async def revoke(self, user: str, host: str, database: str) -> None:
        raise NotImplementedError

    async def enable_root(self, root: G.GuestUser) -> None:
        raise NotImplementedError

    async def enable_replication(self, account: G.GuestUser) -> None:
        """On a source: the replication account (created or reset)."""
        raise NotImplementedError

    async def clone_replica(self, source: G.ReplicateFrom, admin_password: str) -> None:
        """On a new replica: copy the source and follow it, read-only."""
        raise NotImplementedError

    async def promote(self, _cmd=None) -> None:
        """A replica stops following its source and takes writes."""
        raise NotImplementedError

    @property
    def replica_marker(self) -> str:
        return os.path.join(self.root, "replica")

    @property
    def is_replica(self) -> bool:
        return os.path.exists(self.replica_marker)

    async def backup_command(self) -> tuple[list[str], dict, str]:
        """(argv, environment, tool name) of a dump to stdout (backup.py)."""
        raise NotImplementedError

    def restore_command(self) -> tuple[list[str], dict]:
        """(argv, environment) of the client that loads a dump from stdin."""
        raise NotImplementedError

    def restore_keep(self):
        """A fresh predicate over the dump's lines: False drops the line."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------

    @property
    def prepared(self) -> bool:
        return self._state() is not None

    def _state(self) -> dict | None:
        try:
            with open(os.path.join(self.root, "state.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def admin_password(self) -> str:
        path = os.path.join(self.root, "admin.pw")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
            chown(path)
        with open(path) as f:
            return f.read().strip()

    async def prepare(self, prepare: G.Prepare, restore=None) -> None:
        """Idempotent: a second prepare finds the data there and the server up.
        `restore()` (a backup to load) runs once, after securing and before
        the request's databases and users, which may overlap the backup's."""
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o711)
        for path in (self.data, self.rundir):
            os.makedirs(path, exist_ok=True)
            chown(path)
        password = self.admin_password()
        fresh = not self.prepared
        if prepare.HasField("replicate"):
            if fresh:
                await self.clone_replica(prepare.replicate, password)
                self._save_state()
            else:
                await self.start()
            return
        if fresh:
            if not os.listdir(self.data):
                await self.initialise(password)
            self.choose_port()
            await self._start_on_a_free_port()
        else:
            await self.start()
        if fresh:
            await self.secure(password)
        marker = os.path.join(self.root, "restored")
        if restore is not None and not os.path.exists(marker):
            await restore()
            open(marker, "w").close()
        await self.provision(prepare.databases, list(prepare.users))
        if fresh and not (prepare.databases or prepare.users or restore is not None):
            await self.prepare_ahead()
        if fresh:
            self._save_state()

    def _save_state(self) -> None:
        tmp = os.path.join(self.root, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"port": self.port, "manager": self.manager}, f)
        os.replace(tmp, os.path.join(self.root, "state.json"))

    def choose_port(self) -> None:
        if not self.port:
            self.port = self.requested_port or free_port()

    async def _start_on_a_free_port(self, attempts: int = 3) -> None:
        """A port chosen free can be taken by someone else before the server
        binds it: on 'address in use' choose again (first start only)."""
        for attempt in range(attempts):
            try:
                return await self.start()
            except DatastoreError:
                if self.requested_port or attempt == attempts - 1 or "in use" not in self.log_tail(10):
                    raise
                self.port = free_port()

    async def start(self, timeout: float = 60) -> None:
        if self.running:
            return
        self.stopping = False
        log = open(os.path.join(self.root, "server.log"), "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *privileged(self.server_argv()), stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=log, cwd="/")
        except OSError as exc:
            raise DatastoreError(f"cannot start {self.manager}: {exc.strerror}") from None
        finally:
            log.close()
        deadline = asyncio.get_running_loop().time() + timeout
        # Wait on the server's own files, then confirm with one real query:
        # a client process every poll cost more CPU than the whole build.
        while not (self.ready() and await self.ping()):
            if self.process.returncode is not None:
                raise DatastoreError(f"{self.manager} exited with {self.process.returncode} "
                                     f"while starting: {self.log_tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise DatastoreError(f"{self.manager} did not accept connections in {timeout:.0f} s")
            await asyncio.sleep(0.02)

    async def stop(self, timeout: float = 30) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.returncode is not None:
            return
        self.stopping = True
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def exit_status(self) -> int | None:
        """The server's exit code once it died, None while it runs or was never started."""
        return None if self.process is None else self.process.returncode

    def log_tail(self, lines: int = 3) -> str:
        try:
            with open(os.path.join(self.root, "server.log"), errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return ""


def quote_literal(value: str, backslashes: bool = False) -> str:
    """An SQL string literal; `backslashes` doubles them too (MariaDB's default)."""
    if backslashes:
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"
