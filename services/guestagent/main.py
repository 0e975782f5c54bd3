"""nimbus-guestagent (trove-guestagent): `python -m nimbus.services.guestagent
--config-drive DIR --root DIR`.

It reads its configuration from the config drive (the personality file
/etc/nimbus/guest.json: guest id, datastore manager, DatabaseService's
address, its own credential), connects OUT to DatabaseService's
GuestAgentService with that credential, answers commands (prepare first)
and sends a heartbeat every `--heartbeat` seconds and at once on a change:
NEW → BUILDING → HEALTHY, SHUTDOWN or CRASHED when the datastore stops or
dies. It never listens and holds no etcd credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

import grpc

from nimbus import log
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import guest_pb2 as G
from nimbus.database.v1 import guest_pb2_grpc
from nimbus.rpc import tls
from nimbus.rpc.server import channel
from nimbus.services.guestagent import backup
from nimbus.services.guestagent.datastore import Datastore, DatastoreError
from nimbus.services.guestagent.mariadb import MariaDB
from nimbus.services.guestagent.postgresql import PostgreSQL

_log = log.get("nimbus.guestagent")
CONFIG_PATH = "/etc/nimbus/guest.json"
PLUGINS: dict[str, type[Datastore]] = {"postgresql": PostgreSQL, "mariadb": MariaDB}


def read_config_drive(directory: str) -> dict:
    """The guest.json personality file, found through meta_data.json as
    cloud-init would (openstack/latest/meta_data.json -> files -> content)."""
    with open(os.path.join(directory, "openstack", "latest", "meta_data.json")) as f:
        meta = json.load(f)
    for entry in meta.get("files", []):
        if entry["path"] == CONFIG_PATH:
            with open(os.path.join(directory, "openstack", entry["content_path"].lstrip("/"))) as f:
                return json.load(f)
    raise SystemExit(f"the config drive in {directory} has no {CONFIG_PATH}")


class GuestAgent:
    def __init__(self, cfg: dict, root: str, heartbeat: float = 1.0):
        self.guest_id = cfg["guest_id"]
        self.address = cfg["control_address"]
        # The config drive's credential works once: DatabaseService replaces
        # it on the first connection and the new one is kept in <root>/credential.
        self._initial_credential = cfg["credential"]
        self._credential_path = os.path.join(os.path.abspath(root), "credential")
        self._credential = self._saved_credential() or self._initial_credential
        # TLS on DatabaseService: the config drive carries the CA to verify it with.
        self.control_tls = None
        if cfg.get("control_ca"):
            ca_path = os.path.join(os.path.abspath(root), "control-ca.pem")
            os.makedirs(os.path.dirname(ca_path), exist_ok=True)
            with open(ca_path, "w") as f:
                f.write(cfg["control_ca"])
            self.control_tls = tls.ClientTLS(ca=ca_path)
        plugin = PLUGINS.get(cfg["manager"])
        if plugin is None:
            raise SystemExit(f"unknown datastore manager {cfg['manager']!r}")
        self.datastore = plugin(root, int(cfg.get("port", 0)))
        self.heartbeat_interval = heartbeat
        self.status = D.SERVICE_STATUS_NEW
        self.message = ""
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.changed = asyncio.Event()
        self.inflight: set[asyncio.Task] = set()
        self.preparing = asyncio.Lock()
        self._handlers = {
            "prepare": self._prepare, "restart": self._restart,
            "create_databases": lambda c: self.datastore.create_databases(c.databases),
            "delete_database": lambda c: self.datastore.delete_database(c.name),
            "list_databases": self._list_databases,
            "create_users": lambda c: self.datastore.create_users(list(c.users)),
            "delete_user": lambda c: self.datastore.delete_user(c.name, c.host),
            "list_users": self._list_users,
            "grant_access": lambda c: self.datastore.grant(c.user, c.host, list(c.databases)),
            "revoke_access": lambda c: self.datastore.revoke(c.user, c.host, c.databases[0]),
            "enable_root": self.datastore.enable_root,
            "new_credential": self._keep_credential,
            "take_backup": self._take_backup,
            "enable_replication": self.datastore.enable_replication,
            "promote": self.datastore.promote,
        }
        self.stub: guest_pb2_grpc.GuestAgentServiceStub | None = None

    def _saved_credential(self) -> str | None:
        try:
            with open(self._credential_path) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    async def _keep_credential(self, secret: str) -> None:
        os.makedirs(os.path.dirname(self._credential_path), exist_ok=True)
        tmp = self._credential_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        os.replace(tmp, self._credential_path)
        self._credential = secret

    def set_status(self, status: int, message: str = "") -> None:
        if (status, message) != (self.status, self.message):
            self.status, self.message = status, message
            self.changed.set()

    def observe(self) -> None:
        """The datastore's state as the process table sees it."""
        if self.status in (D.SERVICE_STATUS_NEW, D.SERVICE_STATUS_BUILDING):
            return
        if self.datastore.running:
            self.set_status(D.SERVICE_STATUS_HEALTHY)
        elif self.datastore.stopping or self.datastore.exit_status() == 0:
            self.set_status(D.SERVICE_STATUS_SHUTDOWN, f"{self.datastore.manager} stopped")
        else:
            self.set_status(D.SERVICE_STATUS_CRASHED, f"{self.datastore.manager} exited with "
                            f"{self.datastore.exit_status()}: {self.datastore.log_tail(1)}")

    def heartbeat(self) -> G.ConnectRequest:
        port = self.datastore.port if self.datastore.prepared else 0
        return G.ConnectRequest(heartbeat=G.Heartbeat(
            status=self.status, host="127.0.0.1" if port else "", port=port, message=self.message))

    async def _prepare(self, cmd: G.Prepare) -> None:
        async with self.preparing:   # a prepare sent again while one runs waits for it
            if not (self.datastore.prepared and self.datastore.running):
                self.set_status(D.SERVICE_STATUS_BUILDING)   # a repeated prepare stays HEALTHY
            restore = None
            if cmd.HasField("restore"):
                async def restore():
                    await self._rpc(backup.load(self.datastore, self._download(cmd.restore.backup_id),
                                                cmd.restore), "restore")
            try:
                await self.datastore.prepare(cmd, restore)
            except DatastoreError as exc:
                self.set_status(D.SERVICE_STATUS_FAILED, str(exc))
                raise
            self.set_status(D.SERVICE_STATUS_HEALTHY)

    def _metadata(self):
        return (("authorization", f"Bearer guest.{self.guest_id}.{self._credential}"),)

    @staticmethod
    async def _rpc(call, what: str):
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise DatastoreError(f"{what}: {exc.code().name}: {exc.details()}") from None

    async def _download(self, backup_id: str):
        call = self.stub.DownloadBackup(G.DownloadBackupRequest(backup_id=backup_id),
                                        metadata=self._metadata())
        async for msg in call:
            yield msg.data

    async def _take_backup(self, cmd: G.TakeBackup) -> None:
        """Dump and upload; DatabaseService marks it COMPLETED as the upload ends."""
        if not (self.datastore.prepared and self.datastore.running):
            raise DatastoreError(f"{self.datastore.manager} is not running")
        failure: list[DatastoreError] = []
        try:
            await self.stub.UploadBackup(backup.upload_requests(self.datastore, cmd.backup_id, failure),
                                         metadata=self._metadata())
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
            if failure:
                raise failure[0] from None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise DatastoreError(f"upload: {exc.code().name}: {exc.details()}") from None
        if failure:
            raise failure[0]

    async def _restart(self, _cmd) -> None:
        await self.datastore.restart()
        self.set_status(D.SERVICE_STATUS_HEALTHY)

    async def _list_databases(self, _cmd) -> G.Result:
        return G.Result(databases=await self.datastore.list_databases())

    async def _list_users(self, _cmd) -> G.Result:
        return G.Result(users=await self.datastore.list_users())

    async def handle(self, cmd: G.ConnectResponse) -> None:
        kind = cmd.WhichOneof("command")
        result = G.Result()
        try:
            if kind not in self._handlers:
                raise DatastoreError(f"unknown command {kind!r}", "INVALID_ARGUMENT")
            answer = await self._handlers[kind](getattr(cmd, kind))
            if isinstance(answer, G.Result):
                result = answer
            result.ok = True
        except DatastoreError as exc:
            result.ok, result.error, result.error_code = False, str(exc), exc.code
            _log.warning("command failed", command=kind, error=str(exc))
        result.result_of = cmd.id
        await self.outbox.put(G.ConnectRequest(result=result))

    async def resume(self) -> None:
        """After a restart of the agent (or the VM): a prepared datastore starts again."""
        if self.datastore.prepared:
            try:
                await self.datastore.start()
                self.set_status(D.SERVICE_STATUS_HEALTHY)
            except DatastoreError as exc:
                self.set_status(D.SERVICE_STATUS_CRASHED, str(exc))

    async def _beat(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.changed.wait(), self.heartbeat_interval)
            except asyncio.TimeoutError:
                pass
            self.changed.clear()
            self.observe()
            await self.outbox.put(self.heartbeat())

    async def session(self) -> None:
        """One connection: Hello, then heartbeats and results out, commands in."""
        async with channel(self.address, self.control_tls) as ch:
            stub = self.stub = guest_pb2_grpc.GuestAgentServiceStub(ch)
            self.outbox = asyncio.Queue()
            await self.outbox.put(G.ConnectRequest(hello=G.Hello(guest_id=self.guest_id)))
            await self.outbox.put(self.heartbeat())

            async def requests():
                while True:
                    yield await self.outbox.get()
            call = stub.Connect(requests(), metadata=self._metadata())
            try:
                async for cmd in call:
                    task = asyncio.create_task(self.handle(cmd))
                    self.inflight.add(task)
                    task.add_done_callback(self.inflight.discard)
            finally:
                call.cancel()

    async def run(self) -> None:
        await self.resume()
        beat = asyncio.create_task(self._beat())
        backoff = 0.2
        try:
            while True:
                try:
                    await self.session()
                    backoff = 0.2
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                        _log.error("DatabaseService refused this guest", code=exc.code().name)
                        # A new credential whose confirmation was lost: the old one still works.
                        self._credential = (self._initial_credential
                                            if self._credential != self._initial_credential
                                            else self._saved_credential() or self._initial_credential)
                    else:
                        _log.info("connection to DatabaseService lost", code=exc.code().name)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        finally:
            beat.cancel()
            # Let a command finish (an initdb killed mid-way leaves shared
            # memory segments behind), then stop the datastore.
            if self.inflight:
                await asyncio.wait(set(self.inflight), timeout=20)
            await self.datastore.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="nimbus guest agent")
    parser.add_argument("--config-drive", default=os.environ.get("NIMBUS_CONFIG_DRIVE", "/mnt/config"))
    parser.add_argument("--root", default=os.environ.get("NIMBUS_GUEST_ROOT", "/var/lib/nimbus-guest"))
    parser.add_argument("--heartbeat", type=float, default=1.0)
    args = parser.parse_args(argv)
    log.configure()
    agent = GuestAgent(read_config_drive(args.config_drive), args.root, args.heartbeat)

    async def run():
        task = asyncio.create_task(agent.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass
    asyncio.run(run())
