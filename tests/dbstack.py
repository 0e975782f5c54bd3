"""A nimbus stack plus DatabaseService in this process, with the two
datastores registered, for the database tests and the bench. Guests run as
local processes with real PostgreSQL and MariaDB; `close` kills whatever
guests are left, so no process outlives a test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile


from nimbus import config
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import database_pb2_grpc, datastores_pb2 as S, datastores_pb2_grpc
from nimbus.etcd import free_port
from nimbus.rpc import tls
from nimbus.rpc.server import channel
from nimbus.watch import absent_unless_read, until
from nimbus.services.database.main import DatabaseProcess
from stack import ADMIN, Stack

DATASTORES = [("postgresql", "15", "postgresql"), ("mariadb", "10.11", "mariadb")]
W = D.WatchInstancesResponse


def ensure_datastore_user() -> None:
    """The unprivileged user datastores run as (make venv creates it too)."""
    if os.geteuid() == 0 and subprocess.run(["id", "nimbus-db"], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "nimbus-db"], check=True)


class DbStack:
    def __init__(self, etcd_endpoint: str, state_dir: str, qcow2_image: str, hosts: int = 2,
                 usage_timeout: float = 60, expiry: float = 3.0, **extra):
        self.stack = Stack(etcd_endpoint, state_dir, hosts=hosts, **extra)
        self.qcow2_image = qcow2_image
        self.usage_timeout = usage_timeout
        self.expiry = expiry

    async def start_database(self) -> DatabaseProcess:
        cfg = config.Config(**vars(self.stack.cfg))
        cfg.listen = self.address
        cfg.usage_timeout = self.usage_timeout
        cfg.agent_heartbeat_expiry = self.expiry
        cfg.guest_dir = self.guest_dir
        cfg.guest_heartbeat = 0.3
        self.database = await DatabaseProcess(cfg).start()
        return self.database

    async def __aenter__(self) -> "DbStack":
        ensure_datastore_user()
        await self.stack.__aenter__()
        self.api = self.stack.api
        await self.stack.flavor("m1.tiny")
        await self.stack.image(self.qcow2_image)
        # Not under the test's tmp_path: pytest's is 0700, the datastore user must get in.
        self.guest_dir = tempfile.mkdtemp(prefix="nimbus-guests-")
        os.chmod(self.guest_dir, 0o711)
        self.address = f"127.0.0.1:{free_port()}"
        await self.start_database()
        self.channel = channel(self.address, tls.client(self.stack.cfg))
        self.db = database_pb2_grpc.DatabaseServiceStub(self.channel)
        self.datastores = datastores_pb2_grpc.DatastoreServiceStub(self.channel)
        for name, version, manager in DATASTORES:
            await self.datastores.CreateDatastore(S.CreateDatastoreRequest(datastore=S.Datastore(
                name=name, default_version=version, versions=[S.DatastoreVersion(
                    name=version, manager=manager, image="cirros", active=True,
                    volume_support=True, max_accepted_volume_size=10)])), metadata=ADMIN)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.channel.close()
        await self.database.stop()
        await self.stack.__aexit__(*exc)
        kill_guests(self.guest_dir)

    async def wait_for(self, instance_id: str, predicate, timeout: float = 60, metadata=ADMIN):
        call = self.db.WatchInstances(D.WatchInstancesRequest(id=instance_id, all_projects=True),
                                      metadata=metadata)
        # The service's mirror may not hold a fresh record yet: read to be sure.
        gone = absent_unless_read(lambda: self.db.GetInstance(
            D.GetInstanceRequest(id=instance_id), metadata=ADMIN))
        return await until(call, W, "instance", predicate, timeout, gone)

    async def wait_settled(self, instance_id: str, **kw) -> D.Instance:
        return await self.wait_for(instance_id, lambda i: i is not None and i.status not in (
            D.INSTANCE_STATUS_BUILD, D.INSTANCE_STATUS_UNSPECIFIED), **kw)


def kill_guests(guest_dir: str) -> None:
    """Every guest process group left under guest_dir, then the directory."""
    import signal
    for name in os.listdir(guest_dir) if os.path.isdir(guest_dir) else ():
        try:
            with open(os.path.join(guest_dir, name, "agent.pid")) as f:
                os.killpg(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    shutil.rmtree(guest_dir, ignore_errors=True)
    shutil.rmtree(guest_dir + "-templates", ignore_errors=True)
    sweep_shared_memory()


def sweep_shared_memory() -> None:
    """POSIX shared memory segments of the datastore user that no process
    maps: a PostgreSQL killed at the wrong moment (the SIGKILL test) can
    leave its segments in /dev/shm. Only at teardown, when our guests are gone."""
    import pwd
    try:
        uid = pwd.getpwnam("nimbus-db").pw_uid
    except KeyError:
        return
    mapped = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps") as f:
                mapped |= {line.rsplit("/", 1)[-1].strip() for line in f if "/dev/shm/" in line}
        except OSError:
            pass
    for name in os.listdir("/dev/shm"):
        path = os.path.join("/dev/shm", name)
        try:
            if name.startswith("PostgreSQL.") and os.stat(path).st_uid == uid and name not in mapped:
                os.unlink(path)
        except OSError:
            pass


def psql(instance: D.Instance, user: str, password: str, dbname: str, sql: str = "select 1"):
    return subprocess.run(
        ["psql", "-X", "-At", f"host={instance.host} port={instance.port} user={user} "
         f"dbname={dbname} connect_timeout=5", "-c", sql],
        env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True, timeout=20)


def mariadb(instance: D.Instance, user: str, password: str, dbname: str, sql: str = "select 1"):
    return subprocess.run(
        ["mariadb", "--no-defaults", "-h", instance.host, "-P", str(instance.port), "-u", user,
         "--protocol=TCP", "--batch", "--skip-column-names", "--connect-timeout=5",
         *([dbname] if dbname else []), "-e", sql],
        env={**os.environ, "MYSQL_PWD": password}, capture_output=True, text=True, timeout=20)


CLIENTS = {"postgresql": psql, "mariadb": mariadb}


def datastore_processes(guest_dir: str) -> list[int]:
    """Pids of processes whose command line names guest_dir (agents, datastores)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if guest_dir.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found
