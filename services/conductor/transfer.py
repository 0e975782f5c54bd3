"""Disks of a moving server, relayed host to host. Hosts never listen, so
the destination asks here (FetchDisks) and the conductor asks the source
over the assignment stream it holds (a DISK_REQUEST event); the source
pushes its files (PushDisks) and every chunk is passed on as it comes. Only
the two hosts of that server's migration take part (the service token
authenticates the hosts; the migration context authorises them); the
destination checks each file's size and SHA-256."""

from __future__ import annotations

import asyncio
import uuid

from nimbus import errors, migrations
from nimbus.conductor.v1 import conductor_pb2

DISK_REQUEST = "disk-request"    # the queue item kind beside the informer's
ANSWER_SECONDS = 30.0
END = None


class DiskRelay:
    def __init__(self, streams):
        self.streams = streams                       # the ConsoleRelay's host -> subscription
        self.waiting: dict[str, tuple[str, asyncio.Queue]] = {}   # request id -> (source, chunks)

    async def fetch(self, rec, dest_host: str):
        """Chunks from the source of `rec`'s move, for its destination."""
        ctx = migrations.context_of(rec)
        if ctx is None or ctx.dest_host != dest_host:
            raise errors.FailedPrecondition(f"server {rec.server.id} is not moving to {dest_host}")
        subscription = self.streams.get(ctx.source_host)
        if subscription is None:
            raise errors.Unavailable(f"host {ctx.source_host} is not connected to this conductor")
        request_id = uuid.uuid4().hex
        chunks: asyncio.Queue = asyncio.Queue(maxsize=64)   # backpressure on the source
        self.waiting[request_id] = (ctx.source_host, chunks)
        try:
            subscription.put((DISK_REQUEST, conductor_pb2.DiskRequest(
                request_id=request_id, instance_id=rec.server.id)))
            while True:
                try:
                    chunk = await asyncio.wait_for(chunks.get(), ANSWER_SECONDS)
                except TimeoutError:
                    raise errors.Unavailable(f"host {ctx.source_host} stopped sending") from None
                if chunk is END:
                    return
                if chunk.error:
                    raise errors.FailedPrecondition(f"source host: {chunk.error}")
                yield chunk
        finally:
            self.waiting.pop(request_id, None)

    async def push(self, chunks) -> None:
        """Pass a source's pushed chunks on to the waiting destination."""
        queue = None
        async for message in chunks:
            chunk = message.chunk
            if queue is None:
                waiting = self.waiting.get(chunk.request_id)
                if waiting is None or waiting[0] != chunk.host:
                    raise errors.NotFound("disk request", chunk.request_id)
                queue = waiting[1]
            await queue.put(chunk)
        if queue is not None:
            await queue.put(END)
