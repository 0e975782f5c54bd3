"""Guest agents: their credentials, their streams, their heartbeats.

A guest authenticates with 'Bearer guest.<guest id>.<secret>'; etcd keeps
only the secret's SHA-256 (guests/<id>), compared in constant time. The hub
holds each connected guest's stream: `call()` sends a command and waits for
its Result; heartbeats update the instance record (by CAS, only when
something changed). A guest not heard from for `agent_heartbeat_expiry`
seconds is marked FAILED_TIMEOUT_GUESTAGENT.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid

from nimbus import errors, log
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import guest_pb2 as G
from nimbus.database.v1 import guest_pb2_grpc
from nimbus.database.v1 import records_pb2 as R
from nimbus.rpc import auth
from nimbus.services.database import status
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store, now

_log = log.get("nimbus.database.guests")
GUEST = "guest"
ERROR_CODES = {"NOT_FOUND": errors.NotFound, "INVALID_ARGUMENT": errors.InvalidArgument}


def new_credential() -> tuple[str, str]:
    """(secret for the config drive, its hash for etcd)."""
    secret = secrets.token_urlsafe(32)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


class GuestAuthenticator(auth.Authenticator):
    """The server's authenticator, plus guest credentials checked against
    the guests/ informer (in memory: authenticate is synchronous)."""

    def __init__(self, guests: Informer, **kw):
        super().__init__(**kw)
        self.guests = guests

    def authenticate(self, metadata) -> auth.Identity:
        token = auth._bearer(metadata)
        if not token.startswith("guest."):
            return super().authenticate(metadata)
        _, guest_id, secret = (token.split(".", 2) + ["", ""])[:3]
        rec = self.guests.items.get(keys.guest(guest_id))
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if rec is None or not hmac.compare_digest(digest, rec.msg.credential_sha256):
            raise errors.Unauthenticated("invalid guest credential")
        return auth.Identity(f"guest:{guest_id}", "", frozenset({GUEST}))


def guest_of(who: auth.Identity) -> str | None:
    return who.user_id.removeprefix("guest:") if GUEST in who.roles else None


def raise_for(result: G.Result) -> None:
    if result.ok:
        return
    if result.error_code == "NOT_FOUND":
        raise errors.NotFound("datastore object", result.error)
    if result.error_code == "INVALID_ARGUMENT":
        raise errors.InvalidArgument("request", result.error)
    raise errors.FailedPrecondition(f"the guest agent refused: {result.error}")


class Session:
    def __init__(self):
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.pending: dict[str, asyncio.Future] = {}


class GuestHub(guest_pb2_grpc.GuestAgentServiceServicer):
    def __init__(self, store: Store, instances: Informer, guests: Informer, expiry: float):
        self.store = store
        self.instances = instances
        self.guests = guests
        self.expiry = expiry
        self.sessions: dict[str, Session] = {}
        self.connected: dict[str, asyncio.Event] = {}
        self.last_seen: dict[str, float] = {}
        self.started = time.monotonic()
        self._background: set[asyncio.Task] = set()
        self.backups = None   # backups.Backups: the bytes of UploadBackup and DownloadBackup

    def event(self, guest_id: str) -> asyncio.Event:
        return self.connected.setdefault(guest_id, asyncio.Event())

    async def call(self, guest_id: str, timeout: float = 120, **command) -> G.Result:
        session = self.sessions.get(guest_id)
        if session is None:
            raise errors.Unavailable("the instance's guest agent is not connected; retry later")
        cmd = G.ConnectResponse(id=uuid.uuid4().hex, **command)
        future = asyncio.get_running_loop().create_future()
        session.pending[cmd.id] = future
        await session.outbox.put(cmd)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise errors.Unavailable("the guest agent did not answer in time") from None
        finally:
            session.pending.pop(cmd.id, None)

    def _instance_of(self, guest_id: str) -> str | None:
        rec = self.guests.items.get(keys.guest(guest_id))
        return rec.msg.instance_id if rec is not None else None

    async def Connect(self, request_iterator, context):
        guest_id = guest_of(auth.identity())
        if guest_id is None:
            raise errors.PermissionDenied("GuestAgentService is for guest agents")
        session = Session()
        reader = asyncio.create_task(self._read(guest_id, session, request_iterator))
        try:
            while True:
                get = asyncio.create_task(session.outbox.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    yield get.result()
                    continue
                get.cancel()
                reader.result()   # raises what ended the guest's side
                return
        finally:
            reader.cancel()
            if self.sessions.get(guest_id) is session:
                del self.sessions[guest_id]
                self.event(guest_id).clear()
            for future in session.pending.values():
                if not future.done():
                    future.set_exception(errors.Unavailable("the guest agent disconnected"))

    async def UploadBackup(self, request_iterator, context):
        guest_id = guest_of(auth.identity())
        if guest_id is None:
            raise errors.PermissionDenied("GuestAgentService is for guest agents")
        return await self.backups.receive(guest_id, request_iterator)

    async def DownloadBackup(self, request, context):
        guest_id = guest_of(auth.identity())
        if guest_id is None:
            raise errors.PermissionDenied("GuestAgentService is for guest agents")
        async for chunk in self.backups.send(guest_id, request.backup_id):
            yield chunk

    async def _read(self, guest_id: str, session: Session, requests) -> None:
        async for msg in requests:
            kind = msg.WhichOneof("message")
            self.last_seen[guest_id] = time.monotonic()
            if kind == "hello":
                if msg.hello.guest_id != guest_id:
                    raise errors.PermissionDenied("a guest speaks only for itself")
                old = self.sessions.get(guest_id)
                self.sessions[guest_id] = session
                if old is not None:
                    for future in old.pending.values():
                        if not future.done():
                            future.set_exception(errors.Unavailable("the guest agent reconnected"))
                self.event(guest_id).set()
                rec = self.guests.items.get(keys.guest(guest_id))
                if rec is not None and not rec.msg.rotated:
                    task = asyncio.create_task(self._rotate(guest_id))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            elif guest_id not in self.sessions:
                raise errors.FailedPrecondition("a guest starts with hello")
            elif kind == "heartbeat":
                await self._heartbeat(guest_id, msg.heartbeat)
            elif kind == "result":
                future = session.pending.get(msg.result.result_of)
                if future is not None and not future.done():
                    future.set_result(msg.result)

    async def _rotate(self, guest_id: str) -> None:
        """Replace the one-time credential from the config drive; the old one
        stays valid until the guest confirms it kept the new one."""
        secret, digest = new_credential()
        try:
            result = await self.call(guest_id, timeout=30, new_credential=secret)
            if not result.ok:
                raise errors.FailedPrecondition(result.error)

            def mutate(rec: R.GuestRecord):
                rec.credential_sha256, rec.rotated = digest, True
            await self.store.update(keys.guest(guest_id), R.GuestRecord, mutate)
        except Exception as exc:  # noqa: BLE001 - tried again on the next connection
            _log.warning("guest credential rotation failed", guest_id=guest_id, error=str(exc))

    async def _heartbeat(self, guest_id: str, beat: G.Heartbeat) -> None:
        instance_id = self._instance_of(guest_id)
        if instance_id is None:
            return
        current = self.instances.items.get(keys.db_instance(instance_id))
        await apply_heartbeat(self.store, instance_id, beat, current)

    async def watchdog(self) -> None:
        """Mark guests silent for `expiry` seconds (ACTIVE instances only)."""
        while True:
            await asyncio.sleep(min(1.0, self.expiry / 3))
            clock = time.monotonic()
            for versioned in list(self.instances.items.values()):
                rec = versioned.msg
                inst = rec.instance
                if rec.stage != R.STAGE_DONE or inst.task_status != D.TASK_STATUS_NONE:
                    continue
                if inst.service_status == D.SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT:
                    continue
                seen = self.last_seen.get(rec.guest_id, self.started)
                if clock - seen > self.expiry:
                    beat = G.Heartbeat(status=D.SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT,
                                       host=inst.host, port=inst.port,
                                       message=f"no heartbeat from the guest agent for {self.expiry:.0f} s")
                    try:
                        await apply_heartbeat(self.store, inst.id, beat, versioned)
                    except errors.NimbusError:
                        pass


async def apply_heartbeat(store: Store, instance_id: str, beat: G.Heartbeat, current) -> None:
    """The guest's status onto its instance, by CAS, only when it changes."""
    def mutate(rec: R.InstanceRecord):
        inst = rec.instance
        if inst.task_status == D.TASK_STATUS_DELETING:
            return None
        inst.service_status = beat.status
        if beat.port:
            inst.host, inst.port = beat.host, beat.port
        if inst.task_status == D.TASK_STATUS_BUILDING and rec.stage == R.STAGE_PREPARE_SENT:
            if beat.status == D.SERVICE_STATUS_HEALTHY:
                inst.task_status, rec.stage = D.TASK_STATUS_NONE, R.STAGE_DONE
            elif beat.status == D.SERVICE_STATUS_FAILED:
                inst.task_status = D.TASK_STATUS_BUILDING_ERROR_GUEST
                inst.fault.CopyFrom(D.Fault(message=beat.message or "prepare failed",
                                            created_at=now()))
        if beat.status in (D.SERVICE_STATUS_SHUTDOWN, D.SERVICE_STATUS_CRASHED,
                           D.SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT) and beat.message:
            inst.fault.CopyFrom(D.Fault(message=beat.message, created_at=now()))
        elif beat.status == D.SERVICE_STATUS_HEALTHY and inst.task_status == D.TASK_STATUS_NONE:
            inst.ClearField("fault")
        status.refresh(inst)
        inst.updated_at.CopyFrom(now())
        return None

    def unchanged(rec: R.InstanceRecord) -> bool:
        inst = rec.instance
        return (inst.service_status == beat.status and (not beat.port or inst.port == beat.port)
                and not (inst.task_status == D.TASK_STATUS_BUILDING and rec.stage == R.STAGE_PREPARE_SENT))

    if current is not None and unchanged(current.msg):
        return
    try:
        await store.update(keys.db_instance(instance_id), R.InstanceRecord, mutate, current=current,
                           not_found=errors.NotFound("database instance", instance_id))
    except errors.NotFound:
        pass
