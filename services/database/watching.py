"""One Watch* loop for DatabaseService's streams: the informer's matching
records, a SYNCED marker, then every change; a subscriber that fell behind
is told to watch again."""

from __future__ import annotations

from nimbus import errors
from nimbus.store.informer import DELETED, OVERFLOW, SYNCED, UPSERT, Informer


async def stream(informer: Informer, predicate, response, field: str, view):
    """Yield `response(type=..., field=view(record))` for what `predicate` keeps."""
    sub = informer.subscribe(predicate)
    try:
        while True:
            kind, versioned = await sub.queue.get()
            if kind == SYNCED:
                yield response(type=response.EVENT_TYPE_SYNCED)
            elif kind == OVERFLOW:
                raise errors.Unavailable("the watch fell behind; watch again")
            elif kind in (UPSERT, DELETED):
                yield response(type=response.EVENT_TYPE_UPSERT if kind == UPSERT
                               else response.EVENT_TYPE_DELETED, **{field: view(versioned.msg)})
    finally:
        sub.close()
