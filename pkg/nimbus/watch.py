"""Waiting on a Watch* stream (WatchServers, WatchInstances) without polling:
the current objects, a SYNCED marker, then every change."""

from __future__ import annotations

import asyncio

import grpc


async def until(call, response_type, field: str, predicate, timeout: float, confirm_absent=None):
    """The first `field` of an UPSERT event for which predicate holds, or
    None when predicate(None) holds and the object is deleted (or was gone
    before the watch began). TimeoutError after `timeout`; RuntimeError
    when the stream ends first. Cancels the call either way.

    A SYNCED marker before any UPSERT means "absent" only as far as the
    server's mirror knows: a record written a moment ago may not be in it
    yet. `confirm_absent()` (a fresh read) decides then; without it the
    object counts as absent."""
    W = response_type
    seen = False
    try:
        async with asyncio.timeout(timeout):
            async for event in call:
                if event.type == W.EVENT_TYPE_UPSERT:
                    seen = True
                    if predicate(getattr(event, field)):
                        return getattr(event, field)
                elif event.type == W.EVENT_TYPE_DELETED:
                    if predicate(None):
                        return None
                elif event.type == W.EVENT_TYPE_SYNCED and not seen and predicate(None):
                    if confirm_absent is None or await confirm_absent():
                        return None
    finally:
        call.cancel()
    raise RuntimeError("the watch ended")


def absent_unless_read(read):
    """A `confirm_absent` for until(): `read()` (a fresh Get) answering
    NOT_FOUND means absent; an answer means the object exists."""
    async def confirm() -> bool:
        try:
            await read()
            return False
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return True
            raise
    return confirm
