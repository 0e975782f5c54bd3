"""The one module that talks to etcd.

Records are protobuf messages, one key each (see keys.py). Reads return
`Versioned(msg, mod_revision)`. Every change goes through `txn`, and state
transitions through `update`: a compare-and-swap on the key's mod_revision
that first checks the expected task states, and re-reads on a lost race.
Records that must agree (a claim and its instance, a delete and its
allocation) are written by one `txn` with all their compares.

We use aetcd for the connection and etcd's generated stubs for requests:
transactions need several compares (mod_revision of two keys, absent keys),
and the watch below resumes from a revision with its own stream, which
aetcd's shared watcher (one lock and one callback per event) makes costly.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

import aetcd
from aetcd import rpc
from google.protobuf.message import Message

from nimbus import errors
from nimbus.clock import now  # noqa: F401 (its callers' old home)
from nimbus.compute.v1 import compute_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys

M = TypeVar("M", bound=Message)


@dataclasses.dataclass(slots=True)
class Versioned:
    msg: Any
    mod_revision: int


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


class Store:
    def __init__(self, client: aetcd.Client, prefix: str = "/nimbus/"):
        self.client = client
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._kv: Any = None
        self._watch: Any = None
        self._lease: Any = None

    @classmethod
    async def connect(cls, endpoint: str, prefix: str = "/nimbus/") -> "Store":
        host, _, port = endpoint.removeprefix("http://").rpartition(":")
        client = aetcd.Client(host=host or "127.0.0.1", port=int(port), timeout=10)
        await client.connect()
        store = cls(client, prefix)
        store._kv = client.kvstub
        store._watch = rpc.WatchStub(client.channel)
        store._lease = client.leasestub
        return store

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

    async def get_raw(self, suffix: str) -> int | None:
        """The key's mod_revision, None when absent."""
        resp = await self._kv.Range(rpc.RangeRequest(key=self.key(suffix), keys_only=True))
        return resp.kvs[0].mod_revision if resp.kvs else None

    async def count(self, suffix: str) -> int:
        """How many keys lie under a prefix."""
        key = self.key(suffix)
        resp = await self._kv.Range(rpc.RangeRequest(key=key, range_end=prefix_end(key),
                                                     count_only=True))
        return resp.count

    async def list(self, suffix: str, cls: type[M]) -> tuple[list[tuple[str, Versioned]], int]:
        """Every record under a prefix, and the store revision of the read."""
        key = self.key(suffix)
        resp = await self._kv.Range(rpc.RangeRequest(key=key, range_end=prefix_end(key)))
        items = [(self.suffix(kv.key), Versioned(cls.FromString(kv.value), kv.mod_revision))
                 for kv in resp.kvs]
        return items, resp.header.revision

    # ---- writes -----------------------------------------------------------

    async def txn(self, compare: Iterable[rpc.Compare], success: Iterable[rpc.RequestOp],
                  failure: Iterable[rpc.RequestOp] = ()) -> rpc.TxnResponse:
        return await self._kv.Txn(rpc.TxnRequest(
            compare=list(compare), success=list(success), failure=list(failure)))

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

    async def watch(self, suffix: str, start_revision: int) -> AsyncIterator[list]:
        """Yield lists of etcd events under a prefix from `start_revision` on.
        Raises Compacted when that revision is gone; ends when etcd goes away."""
        key = self.key(suffix)
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=key, range_end=prefix_end(key), start_revision=start_revision, prev_kv=True))
        done = asyncio.Event()

        async def requests():
            yield create
            await done.wait()

        call = self._watch.Watch(requests())
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
        async for reply in self._lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease_id)])):
            return reply.TTL
        return 0

    async def revoke(self, lease_id: int) -> None:
        try:
            await self._lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id))
        except aetcd.rpc.AioRpcError:
            pass  # already gone


class ExtraCompareFailed(Exception):
    """A multi-record transaction lost on a record other than the main one."""
