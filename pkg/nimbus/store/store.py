"""The one module that talks to etcd.

Records are protobuf messages, one key each (see keys.py). Reads return
`Versioned(msg, mod_revision)`. Every change goes through `txn`, and state
transitions through `update`: a compare-and-swap on the key's mod_revision
that first checks the expected task states, and re-reads on a lost race.
Records that must agree (a claim and its instance, a delete and its
allocation) are written by one `txn` with all their compares.

We use etcd's generated stubs (as aetcd ships them) on a gRPC channel of
our own, which may hold several members of a cluster: transactions need
several compares (mod_revision of two keys, absent keys), and the watch
below resumes from a revision with its own stream, which aetcd's shared
watcher (one lock and one callback per event) makes costly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

import grpc
from aetcd import rpc
from google.protobuf.message import Message

from nimbus import errors, log, metrics
from nimbus.clock import now  # noqa: F401 (its callers' old home)
from nimbus.compute.v1 import compute_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys

_log = log.get("nimbus.store")
_last_transport_report = [0.0]


def _report_transport(exc: grpc.aio.AioRpcError) -> None:
    """Say why etcd is unreachable (grpc's own words: refused, reset, GOAWAY,
    no address), at most every 5 s per process: users get one plain
    message, an operator needs the cause."""
    if time.monotonic() - _last_transport_report[0] >= 5:
        _last_transport_report[0] = time.monotonic()
        _log.warning("etcd transport failure", detail=(exc.details() or "")[:200])

M = TypeVar("M", bound=Message)


@dataclasses.dataclass(slots=True)
class Versioned:
    msg: Any
    mod_revision: int


# etcd 3.5.0-3.5.4 panics when a client cancels a read-only Txn while it is
# applied (etcd-io/etcd#14110, fixed in 3.5.5): every deadline below is such
# a cancel, so nimbus refuses to run on those versions.
BAD_ETCD_VERSIONS = ((3, 5, 0), (3, 5, 4))
DEFAULT_TIMEOUT = 5.0     # seconds for one etcd call: then UNAVAILABLE

# etcd's own limits (its defaults: --max-request-bytes 1.5 MiB, --max-txn-ops
# 128). A request over them is refused by etcd with a bare error; nimbus
# checks first and names the limit. The byte limit keeps a margin for the
# raft entry's own overhead.
MAX_REQUEST_BYTES = 1536 * 1024 - 16 * 1024
MAX_TXN_OPS = 128
# A list reads at most this many keys per range request (and halves it when
# a page is still over the message limit): one page stays far below both
# gRPC's 4 MiB default and etcd's response budget whatever the prefix holds.
PAGE_KEYS = 256
MAX_MESSAGE_BYTES = 64 * 1024 * 1024   # what this client accepts in one response
NOSPACE = "database space exceeded"


def etcd_version_problem(version: str) -> str | None:
    """Why nimbus must not run on this etcd version, or None."""
    try:
        parsed = tuple(int(p) for p in version.split("-")[0].split(".")[:3])
    except ValueError:
        return None
    low, high = BAD_ETCD_VERSIONS
    if low <= parsed <= high:
        return (f"etcd {version} panics when a client cancels a read-only transaction "
                "(etcd-io/etcd#14110, fixed in 3.5.5): use etcd >= 3.5.5, or Debian 12's "
                "etcd-server 3.4.23 (apt-get install etcd-server)")
    return None


_TXN_OK = metrics.ETCD_TXNS.labels("succeeded")
_TXN_LOST = metrics.ETCD_TXNS.labels("compare_failed")


class Compacted(Exception):
    """The watch start revision was compacted away: list again."""



def task_state_name(state: int) -> str:
    return compute_pb2.TaskState.Name(state) if state else "none"


def prefix_end(prefix: bytes) -> bytes:
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


_IDEMPOTENT = frozenset({"Range", "Status"})


class _Deadlined:
    """An etcd stub whose unary calls all carry `timeout` (a stalled etcd
    must not hang callers until their own deadline) and whose transport
    failures are errors.Unavailable: one clear message for users."""

    def __init__(self, stub: Any, timeout: float, wait_for_ready: bool = False):
        self._stub = stub
        self._timeout = timeout
        self._ready = wait_for_ready

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)
        timeout, ready = self._timeout, self._ready
        # A read cut off with the member it was sent to goes to the next
        # member once (reads are idempotent; writes are not: their callers
        # decide, e.g. a create's client_token).
        retry = ready and name in _IDEMPOTENT

        async def call(request):
            deadline = time.monotonic() + timeout
            try:
                try:
                    return await method(request, timeout=timeout, wait_for_ready=ready)
                except grpc.aio.AioRpcError as exc:
                    left = deadline - time.monotonic()
                    if not retry or exc.code() != grpc.StatusCode.UNAVAILABLE or left <= 0:
                        raise
                return await method(request, timeout=left, wait_for_ready=ready)
            except grpc.aio.AioRpcError as exc:
                # etcd may notice the deadline first: UNKNOWN "context deadline exceeded".
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED or \
                        "context deadline exceeded" in (exc.details() or ""):
                    raise errors.Unavailable(
                        f"the state store (etcd) did not answer within {timeout:g} s; "
                        "retry later") from exc
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    _report_transport(exc)
                    raise errors.Unavailable(
                        "the state store (etcd) is unreachable; retry later") from exc
                if NOSPACE in (exc.details() or ""):
                    raise errors.ResourceExhausted(
                        "the state store (etcd) is out of space (its NOSPACE alarm is raised): "
                        "nothing can be written until an operator compacts, defragments and "
                        "disarms the alarm; reads still work") from exc
                raise
        return call


def endpoints_of(spec: str) -> list[str]:
    """'h1:p1,http://h2:p2' -> ['h1:p1', 'h2:p2']: the members of one etcd cluster."""
    out = []
    for part in spec.split(","):
        part = part.strip().removeprefix("http://").rstrip("/")
        if part:
            host, _, port = part.rpartition(":")
            if not port.isdigit():
                raise ValueError(f"etcd endpoint {part!r} is not host:port")
            out.append(f"{host or '127.0.0.1'}:{port}")
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


def etcd_credentials(cfg) -> grpc.ChannelCredentials | None:
    """TLS credentials for etcd from cfg.etcd_ca/etcd_cert/etcd_key, or None
    (plaintext) when no CA is given."""
    if not cfg.etcd_ca:
        if cfg.etcd_cert or cfg.etcd_key:
            raise ValueError("--etcd-cert/--etcd-key need --etcd-ca (the CA of etcd's certificate)")
        return None
    if bool(cfg.etcd_cert) != bool(cfg.etcd_key):
        raise ValueError("--etcd-cert and --etcd-key go together")

    def read(path: str) -> bytes | None:
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return grpc.ssl_channel_credentials(root_certificates=read(cfg.etcd_ca),
                                        private_key=read(cfg.etcd_key),
                                        certificate_chain=read(cfg.etcd_cert))


class _Channel:
    """What Store.close needs of the connection (it once was an aetcd.Client)."""

    def __init__(self, channel: grpc.aio.Channel):
        self.channel = channel

    async def close(self) -> None:
        await self.channel.close()


class Store:
    def __init__(self, client: Any, prefix: str = "/nimbus/",
                 timeout: float = DEFAULT_TIMEOUT):
        self.client = client
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.timeout = timeout
        self._kv: Any = None
        self._watch: Any = None
        self._lease: Any = None
        self._maintenance: Any = None
        self.healthy = asyncio.Event()   # set while etcd answers (see probe())

    @classmethod
    async def connect(cls, endpoint: str, prefix: str = "/nimbus/",
                      timeout: float = DEFAULT_TIMEOUT,
                      credentials: grpc.ChannelCredentials | None = None) -> "Store":
        """Connect to one etcd endpoint or to several members of a cluster
        ('h1:p1,h2:p2,h3:p3'), and refuse an etcd version known to crash
        (RuntimeError). With several, one gRPC channel holds them all: when
        the member in use goes away, calls fail over to the next that
        answers (calls in flight get UNAVAILABLE; their callers retry).
        With `credentials` (etcd_credentials) the channel is TLS."""
        members = endpoints_of(endpoint)
        target = members[0] if len(members) == 1 else "ipv4:" + ",".join(
            f"{socket.gethostbyname(m.rpartition(':')[0])}:{m.rpartition(':')[2]}" for m in members)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Reconnect to a member that comes back within a second or so.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        if credentials is None:
            channel = grpc.aio.insecure_channel(target, options=options)
        else:
            # The ipv4: list of several members has no host name to check the
            # certificate against: the first member's name stands for all
            # (an etcd cluster's certificate names every member, or *.domain).
            if len(members) > 1:
                options.append(("grpc.ssl_target_name_override",
                                members[0].rpartition(":")[0]))
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        client = _Channel(channel)
        store = cls(client, prefix, timeout)
        # With several members a call made while the channel moves to the
        # next one waits for it (within the timeout) instead of failing.
        ready = len(members) > 1
        store._kv = _Deadlined(rpc.KVStub(channel), timeout, ready)
        store._watch = rpc.WatchStub(channel)
        store._lease = _Deadlined(rpc.LeaseStub(channel), timeout, ready)
        store._raw_lease = rpc.LeaseStub(channel)
        store._maintenance = _Deadlined(rpc.MaintenanceStub(channel), timeout, ready)
        try:
            version = await store.version()
        except BaseException:
            await client.close()
            raise
        problem = etcd_version_problem(version)
        if problem:
            await client.close()
            raise RuntimeError(f"refusing etcd at {endpoint}: {problem}")
        store.healthy.set()
        return store

    @classmethod
    async def for_config(cls, cfg) -> "Store":
        """The store a nimbus process uses: its endpoints, prefix, deadline and TLS."""
        return await cls.connect(cfg.etcd_endpoint, cfg.etcd_prefix, cfg.etcd_timeout,
                                 etcd_credentials(cfg))

    async def version(self) -> str:
        return (await self._maintenance.Status(rpc.StatusRequest())).version

    async def probe(self, interval: float = 1.0, on_change=None) -> None:
        """Forever: ask etcd for its status every `interval`; keep `healthy`
        (and call on_change(bool) when it flips) so a process can stop
        answering SERVING while etcd is lost, and start again when it is back."""
        while True:
            try:
                await self.version()
                ok = True
            except (errors.NimbusError, grpc.aio.AioRpcError, OSError):
                ok = False
            if ok != self.healthy.is_set():
                (self.healthy.set if ok else self.healthy.clear)()
                if on_change is not None:
                    await on_change(ok)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self.client.close()

    def key(self, suffix: str) -> bytes:
        return (self.prefix + suffix).encode()

    def suffix(self, key: bytes) -> str:
        return key.decode()[len(self.prefix):]

    # ---- op builders ----------------------------------------------------

    def put(self, suffix: str, msg: Message, lease: int = 0) -> rpc.RequestOp:
        return rpc.RequestOp(request_put=rpc.PutRequest(
            key=self.key(suffix), value=msg.SerializeToString(), lease=lease))

    def delete(self, suffix: str, prefix: bool = False) -> rpc.RequestOp:
        key = self.key(suffix)
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(
            key=key, range_end=prefix_end(key) if prefix else b""))

    def get_op(self, suffix: str) -> rpc.RequestOp:
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=self.key(suffix)))

    def mod_is(self, suffix: str, revision: int) -> rpc.Compare:
        """True when the key is unchanged since `revision` (0: the key is absent)."""
        return rpc.Compare(key=self.key(suffix), result=rpc.Compare.EQUAL,
                           target=rpc.Compare.MOD, mod_revision=revision)

    def prefix_unchanged(self, suffix: str, revision: int) -> rpc.Compare:
        """True while no key under the prefix was created or modified after
        `revision` (deletions do not show; callers only need "nothing new"):
        a list's view, pinned in a transaction."""
        key = self.key(suffix)
        return rpc.Compare(key=key, range_end=prefix_end(key), result=rpc.Compare.LESS,
                           target=rpc.Compare.MOD, mod_revision=revision + 1)

    # ---- reads ------------------------------------------------------------

    async def get(self, suffix: str, cls: type[M]) -> Versioned | None:
        resp = await self._kv.Range(rpc.RangeRequest(key=self.key(suffix)))
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return Versioned(cls.FromString(kv.value), kv.mod_revision)

    async def get_many(self, wanted: dict[str, type]) -> dict[str, Versioned | None]:
        """Several records in ONE round trip (a read-only transaction): each
        key of `wanted` -> its record (None: absent), all at one revision."""
        if not wanted:
            return {}
        names = list(wanted)
        resp = await self.txn([], [self.get_op(name) for name in names])
        found = {}
        for name, each in zip(names, resp.responses):
            kvs = each.response_range.kvs
            found[name] = (Versioned(wanted[name].FromString(kvs[0].value), kvs[0].mod_revision)
                           if kvs else None)
        return found

    async def get_raw(self, suffix: str) -> int | None:
        """The key's mod_revision, None when absent."""
        resp = await self._kv.Range(rpc.RangeRequest(key=self.key(suffix), keys_only=True))
        return resp.kvs[0].mod_revision if resp.kvs else None

    async def current_revision(self) -> int:
        """etcd's revision now."""
        resp = await self._kv.Range(rpc.RangeRequest(key=self.key(""), keys_only=True, limit=1))
        return resp.header.revision

    async def count(self, suffix: str) -> int:
        """How many keys lie under a prefix."""
        key = self.key(suffix)
        resp = await self._kv.Range(rpc.RangeRequest(key=key, range_end=prefix_end(key),
                                                     count_only=True))
        return resp.count

    async def list(self, suffix: str, cls: type[M]) -> tuple[list[tuple[str, Versioned]], int]:
        """Every record under a prefix, and the store revision of the read."""
        kvs, revision = await self.list_raw(suffix)
        return ([(self.suffix(kv.key), Versioned(cls.FromString(kv.value), kv.mod_revision))
                 for kv in kvs], revision)

    async def list_raw(self, suffix: str, page_keys: int = PAGE_KEYS) -> tuple[list, int]:
        """Every key-value under a prefix, read in pages of at most
        `page_keys` keys, all at the first page's revision: one consistent
        snapshot, however large the prefix, with no response near gRPC's or
        etcd's message limits. Compacted mid-way: start again."""
        key = self.key(suffix)
        end = prefix_end(key)
        while True:
            kvs: list = []
            start, revision, limit = key, 0, page_keys
            try:
                while True:
                    try:
                        resp = await self._kv.Range(rpc.RangeRequest(
                            key=start, range_end=end, limit=limit, revision=revision))
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and limit > 1:
                            limit //= 2   # this page's records are large: smaller pages
                            continue
                        raise
                    revision = revision or resp.header.revision
                    kvs.extend(resp.kvs)
                    if not resp.more or not resp.kvs:
                        return kvs, revision
                    start = resp.kvs[-1].key + b"\0"
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.OUT_OF_RANGE or "compacted" not in (exc.details() or ""):
                    raise

    # ---- writes -----------------------------------------------------------

    async def txn(self, compare: Iterable[rpc.Compare], success: Iterable[rpc.RequestOp],
                  failure: Iterable[rpc.RequestOp] = ()) -> rpc.TxnResponse:
        request = rpc.TxnRequest(compare=list(compare), success=list(success),
                                 failure=list(failure))
        check_limits(request)
        resp = await self._kv.Txn(request)
        (_TXN_OK if resp.succeeded else _TXN_LOST).inc()
        return resp

    async def create(self, suffix: str, msg: Message, also: Iterable[rpc.RequestOp] = ()) -> int:
        """Write a new record (and `also`) unless the key exists; returns the revision."""
        resp = await self.txn([self.mod_is(suffix, 0)], [self.put(suffix, msg), *also])
        if not resp.succeeded:
            raise errors.AlreadyExists(f"{suffix} already exists")
        return resp.header.revision

    async def update(
        self,
        suffix: str,
        cls: type[M],
        mutate: Callable[[M], tuple[list, list] | None],
        *,
        check: Callable[[M], None] | None = None,
        current: Versioned | None = None,
        not_found: errors.NimbusError | None = None,
    ) -> Versioned:
        """Compare-and-swap: read (or take `current`), `check` the record (raise
        to refuse), `mutate` a copy, write it only if the key's mod_revision is
        unchanged. `mutate` may return extra (compares, ops) that join the same
        transaction. On a lost race the failure branch returns the new value
        and we go round again, so `check` always sees the latest record."""
        # A caller's `current` usually comes from an informer and may lag:
        # a refusal based on it is only final once confirmed by a fresh read.
        maybe_stale = current is not None
        if current is None:
            current = await self.get(suffix, cls)
        while True:
            if current is None:
                raise not_found or errors.NotFound(suffix.split("/", 1)[0].rstrip("s"), suffix)
            new = cls()
            new.CopyFrom(current.msg)
            try:
                if check is not None:
                    check(current.msg)
                extra = mutate(new) or ((), ())
            except errors.NimbusError:
                if not maybe_stale:
                    raise
                maybe_stale = False
                current = await self.get(suffix, cls)
                continue
            compares = [self.mod_is(suffix, current.mod_revision), *extra[0]]
            resp = await self.txn(compares, [self.put(suffix, new), *extra[1]],
                                  [self.get_op(suffix)])
            if resp.succeeded:
                return Versioned(new, resp.header.revision)
            kvs = resp.responses[0].response_range.kvs
            fresh = Versioned(cls.FromString(kvs[0].value), kvs[0].mod_revision) if kvs else None
            if fresh is not None and current is not None and fresh.mod_revision == current.mod_revision:
                # Our record did not change: an extra compare failed. The
                # caller must recompute those from fresh state.
                raise ExtraCompareFailed()
            current = fresh
            maybe_stale = False

    # ---- instances ---------------------------------------------------------

    async def update_instance(self, instance_id: str, mutate, *, expected_task_states=None,
                              current: Versioned | None = None) -> Versioned:
        """update() with Nova's expected_task_state check on the instance."""
        def check(rec: records_pb2.InstanceRecord) -> None:
            if expected_task_states is not None and rec.server.task_state not in expected_task_states:
                raise errors.UnexpectedTaskState(
                    instance_id, task_state_name(rec.server.task_state),
                    [task_state_name(s) for s in expected_task_states])
        return await self.update(keys.instance(instance_id), records_pb2.InstanceRecord, mutate,
                                 check=check, current=current,
                                 not_found=errors.NotFound("server", instance_id))

    # ---- watch and leases --------------------------------------------------

    async def watch(self, suffix: str, start_revision: int, deletes_only: bool = False,
                    prev_kv: bool = True) -> AsyncIterator[list]:
        """Yield lists of etcd events under a prefix from `start_revision` on.
        Raises Compacted when that revision is gone; ends when etcd goes away.
        `deletes_only`: etcd leaves the puts out before sending (NOPUT).
        `prev_kv`: each event also carries the key's previous value (etcd
        reads it for every event and sends it: a mirror that holds every
        record already has it)."""
        key = self.key(suffix)
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=key, range_end=prefix_end(key), start_revision=start_revision, prev_kv=prev_kv,
            filters=[rpc.WatchCreateRequest.NOPUT] if deletes_only else []))
        done = asyncio.Event()

        async def requests():
            yield create
            await done.wait()

        # hasleader: a member cut off from the leader ends the watch (and
        # the informer lists again elsewhere) instead of going silent.
        call = self._watch.Watch(requests(), metadata=(("hasleader", "true"),))
        try:
            async for resp in call:
                if resp.compact_revision:
                    raise Compacted(resp.compact_revision)
                if resp.canceled:
                    raise errors.Unavailable(f"etcd cancelled the watch: {resp.cancel_reason}")
                if resp.events:
                    yield resp.events
        finally:
            done.set()
            call.cancel()

    async def grant(self, ttl: int) -> int:
        resp = await self._lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl))
        return resp.ID

    async def refresh(self, lease_id: int) -> int:
        """Refresh a lease; returns its remaining TTL, 0 when it has expired."""
        call = self._raw_lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]),
                                              timeout=self.timeout)
        try:
            async for reply in call:
                return reply.TTL
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                raise errors.Unavailable("the state store (etcd) did not refresh the lease") from exc
            raise
        finally:
            call.cancel()
        return 0

    async def revoke(self, lease_id: int) -> None:
        try:
            await self._lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id))
        except (grpc.aio.AioRpcError, errors.Unavailable):
            pass  # already gone, or etcd away: the lease then expires by itself


def txn_bytes(ops: Iterable[rpc.RequestOp]) -> int:
    """The bytes these ops add to a transaction request (for callers that
    split a large change into several transactions)."""
    return sum(op.ByteSize() + 4 for op in ops)


def check_limits(request: rpc.TxnRequest) -> None:
    """errors.ResourceExhausted naming etcd's limit when the transaction is
    over it (etcd would refuse it with an opaque error)."""
    for branch in ("compare", "success", "failure"):
        count = len(getattr(request, branch))
        if count > MAX_TXN_OPS:
            raise errors.ResourceExhausted(
                f"the change needs {count} operations in one etcd transaction "
                f"({branch}), over etcd's limit of {MAX_TXN_OPS} (--max-txn-ops)")
    size = request.ByteSize()
    if size > MAX_REQUEST_BYTES:
        raise errors.ResourceExhausted(
            f"the change is {size} bytes, over etcd's request limit of {MAX_REQUEST_BYTES} "
            "bytes (--max-request-bytes 1.5 MiB): make it smaller")


class ExtraCompareFailed(Exception):
    """A multi-record transaction lost on a record other than the main one."""
