"""List + watch: an in-memory mirror of one etcd prefix.

`run()` lists the prefix (in pages, one snapshot), then watches what
follows the list's revision; when the watch breaks (etcd restarted, a member lost)
it resumes from the last revision it saw, and when that revision was
compacted it lists again and emits the difference, so listeners are
level-triggered and never miss a state.
Listeners are plain functions called in the event loop thread, in order;
`subscribe` gives a queue that starts with a snapshot (for streams).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Iterable

from nimbus import log, metrics
from nimbus.store.store import Compacted, Store, Versioned

UPSERT = "upsert"
DELETED = "deleted"
SYNCED = "synced"
GAP = "gap"          # Deletions: some deletions may have been missed (see there)

_log = log.get("nimbus.informer")

Listener = Callable[[str, str, Versioned | None, Versioned | None], None]


OVERFLOW = "overflow"


class Subscription:
    """A subscriber's queue. One that falls MAX_BACKLOG events behind (a
    client that stopped reading) is cut off with OVERFLOW instead of growing
    without bound; the client watches again and gets a fresh list."""

    MAX_BACKLOG = 10000

    def __init__(self, informer: "Informer", predicate, key: str | None = None):
        self._informer = informer
        self.predicate = predicate
        self.key = key
        self.queue: asyncio.Queue = asyncio.Queue()

    def put(self, item) -> None:
        if self.queue.qsize() >= self.MAX_BACKLOG:
            self.close()
            self.queue.put_nowait((OVERFLOW, None))
        else:
            self.queue.put_nowait(item)

    def close(self) -> None:
        self._informer._subscriptions.discard(self)
        keyed = self._informer._keyed.get(self.key)
        if keyed is not None:
            keyed.discard(self)
            if not keyed:
                del self._informer._keyed[self.key]


class Informer:
    def __init__(self, store: Store, prefix: str, cls, name: str | None = None,
                 index: Callable[[object], Iterable[str]] | None = None):
        """`index(record)` names the keys a record belongs to (an instance:
        its hosts): a subscription made with one of them hears only of
        records under it, so an event costs the few subscriptions it concerns,
        not one predicate per subscriber (1,000 hosts' assignment streams)."""
        self.store = store
        self.prefix = prefix
        self.cls = cls
        self.name = name or prefix.rstrip("/")
        self.items: dict[str, Versioned] = {}   # key suffix -> record
        self.revision = 0
        self.synced = asyncio.Event()
        self._listeners: list[Listener] = []
        self._subscriptions: set[Subscription] = set()
        self.index = index
        self._keyed: dict[str, set[Subscription]] = {}

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def subscribe(self, predicate=lambda rec: True, key: str | None = None) -> Subscription:
        """A queue holding (UPSERT, rec) for every matching record now, then
        (SYNCED, None), then every matching change. Atomic: nothing happens
        between the snapshot and the registration (one event loop thread).
        With `key` (an informer with an index), only records the index puts
        under that key are offered to `predicate`."""
        if key is not None and self.index is None:
            raise ValueError("a keyed subscription needs an informer with an index")
        sub = Subscription(self, predicate, key)
        for versioned in self.items.values():
            if predicate(versioned.msg):
                sub.queue.put_nowait((UPSERT, versioned))
        sub.queue.put_nowait((SYNCED, None))
        if key is None:
            self._subscriptions.add(sub)
        else:
            self._keyed.setdefault(key, set()).add(sub)
        return sub

    def _emit(self, kind: str, key: str, new: Versioned | None, old: Versioned | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, key, new, old)
            except Exception:  # noqa: BLE001 - one listener must not stop the mirror
                _log.exception("listener failed", informer=self.name, key=key)
        # A subscriber also hears of a record that stops matching (an
        # instance moved to another host), so it can forget it.
        subs = list(self._subscriptions)
        if self._keyed:
            index_keys = set(self.index(new.msg)) if new is not None else set()
            if old is not None:
                index_keys.update(self.index(old.msg))
            for index_key in index_keys:
                subs.extend(self._keyed.get(index_key, ()))
        for sub in subs:
            if ((new is not None and sub.predicate(new.msg))
                    or (old is not None and sub.predicate(old.msg))):
                sub.put((kind, new if kind == UPSERT else old))

    async def _relist(self) -> None:
        metrics.WATCH_RELISTS.labels(self.prefix).inc()
        items, revision = await self.store.list(self.prefix, self.cls)
        fresh = dict(items)
        for key, old in list(self.items.items()):
            if key not in fresh:
                del self.items[key]
                self._emit(DELETED, key, None, old)
        for key, new in fresh.items():
            old = self.items.get(key)
            if old is None or old.mod_revision != new.mod_revision:
                self.items[key] = new
                self._emit(UPSERT, key, new, old)
        self.revision = revision

    def _apply(self, events) -> None:
        cls = self.cls
        for ev in events:
            key = self.store.suffix(ev.kv.key)
            old = self.items.get(key)
            if ev.type == 0:  # PUT
                new = Versioned(cls.FromString(ev.kv.value), ev.kv.mod_revision)
                self.items[key] = new
                self._emit(UPSERT, key, new, old)
            else:
                self.items.pop(key, None)
                if old is None and ev.prev_kv.key:
                    old = Versioned(cls.FromString(ev.prev_kv.value), ev.prev_kv.mod_revision)
                if old is not None:
                    self._emit(DELETED, key, None, old)
            self.revision = ev.kv.mod_revision

    async def run(self) -> None:
        """List, then watch; a broken watch (etcd restarted, a member lost)
        resumes from the last revision seen, so a failover costs no list of
        the whole prefix; only a compacted revision (or the first start)
        lists again and emits the difference."""
        backoff = 0.1
        listed = False
        while True:
            try:
                if listed and await self.store.current_revision() < self.revision:
                    listed = False   # an etcd that lost its data (restored, replaced)
                if not listed:
                    await self._relist()
                    listed = True
                    if not self.synced.is_set():
                        self.synced.set()
                # From the revision already seen, not the next one: etcd lets
                # a watch start AT the compacted revision but compaction has
                # dropped that revision's deletions (measured: a delete
                # vanished). One revision earlier, any compaction that could
                # hide an event we lack is reported, and we list instead.
                seen = self.revision
                # Without prev_kv: every record an event names is in `items`
                # since the list (etcd would read and send each old value).
                async for events in self.store.watch(self.prefix, seen, prev_kv=False):
                    self._apply([ev for ev in events if ev.kv.mod_revision > seen])
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Compacted:
                _log.info("watch compacted, listing again", informer=self.name)
                listed = False
            except Exception as exc:  # noqa: BLE001 - etcd away: retry with backoff
                _log.warning("watch broken, retrying", informer=self.name, error=str(exc),
                             retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


class Deletions:
    """Only the deletions under a prefix, each with the record as it was
    (etcd's prev_kv), for a listener that acts on nothing else and need
    not mirror a busy prefix: etcd drops the puts before sending (NOPUT),
    so the volume manager no longer receives and decodes every step of
    every boot to hear of a deleted server. Listeners are called as an
    Informer's, (DELETED, key, None, old); when deletions may have been
    missed (the watch's revision was compacted, etcd lost its data) they
    get (GAP, "", None, None) and look again at what they keep
    (level-triggered, as after a list)."""

    def __init__(self, store: Store, prefix: str, cls, name: str | None = None):
        self.store = store
        self.prefix = prefix
        self.cls = cls
        self.name = name or prefix.rstrip("/") + " deletions"
        self.revision = 0
        self.synced = asyncio.Event()
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _emit(self, kind: str, key: str, old: Versioned | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, key, None, old)
            except Exception:  # noqa: BLE001 - one listener must not stop the watch
                _log.exception("listener failed", informer=self.name, key=key)

    async def run(self) -> None:
        backoff = 0.1
        gap = False
        while True:
            try:
                current = await self.store.current_revision()
                if not self.revision or current < self.revision:
                    gap = gap or bool(self.revision)   # an etcd that lost its data
                    self.revision = current
                    self.synced.set()
                if gap:
                    # Only once the watch's new start is known: what listeners
                    # look at now is at least as new as it.
                    gap = False
                    self._emit(GAP, "", None)
                # From the revision already seen, as the Informer does (a
                # compaction that could hide a deletion is reported).
                seen = self.revision
                async for events in self.store.watch(self.prefix, seen, deletes_only=True):
                    for ev in events:
                        if ev.kv.mod_revision <= seen:
                            continue
                        if ev.type != 0 and ev.prev_kv.key:
                            self._emit(DELETED, self.store.suffix(ev.kv.key), Versioned(
                                self.cls.FromString(ev.prev_kv.value), ev.prev_kv.mod_revision))
                        self.revision = ev.kv.mod_revision
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Compacted:
                _log.info("watch compacted, deletions may be missed", informer=self.name)
                self.revision, gap = 0, True
            except Exception as exc:  # noqa: BLE001 - etcd away: retry with backoff
                _log.warning("watch broken, retrying", informer=self.name, error=str(exc),
                             retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
