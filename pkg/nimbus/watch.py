"""Waiting on a Watch* stream (WatchServers, WatchInstances) without polling:
the current objects, a SYNCED marker, then every change."""

from __future__ import annotations

import asyncio


async def until(call, response_type, field: str, predicate, timeout: float):
    """The first `field` of an UPSERT event for which predicate holds, or
    None when predicate(None) holds and the object is deleted (or was gone
    before the watch began). TimeoutError after `timeout`; RuntimeError
    when the stream ends first. Cancels the call either way."""
    W = response_type
    seen = False
    try:
        async with asyncio.timeout(timeout):
            async for event in call:
                if event.type == W.EVENT_TYPE_UPSERT:
                    seen = True
                    if predicate(getattr(event, field)):
                        return getattr(event, field)
                elif event.type == W.EVENT_TYPE_DELETED or (
                        event.type == W.EVENT_TYPE_SYNCED and not seen):
                    if predicate(None):
                        return None
    finally:
        call.cancel()
    raise RuntimeError("the watch ended")
