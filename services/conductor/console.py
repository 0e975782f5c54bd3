"""Console output, relayed: agents never listen, so the conductor asks a
host over the assignment stream it already holds (a CONSOLE_REQUEST event)
and the host answers with ReturnConsoleOutput; the waiting API call gets the
answer. Only the conductor holding that host's stream can ask it."""

from __future__ import annotations

import asyncio
import uuid

from nimbus import errors
from nimbus.conductor.v1 import conductor_pb2

CONSOLE = "console"          # the queue item kind beside the informer's
ANSWER_SECONDS = 10.0


class ConsoleRelay:
    def __init__(self):
        self.streams: dict[str, object] = {}        # host -> its stream's Subscription
        self.waiting: dict[str, tuple[str, asyncio.Future]] = {}   # request id -> (host, answer)

    def register(self, host: str, subscription) -> None:
        self.streams[host] = subscription

    def unregister(self, host: str, subscription) -> None:
        if self.streams.get(host) is subscription:
            del self.streams[host]

    async def ask(self, host: str, instance_id: str, length: int) -> str:
        subscription = self.streams.get(host)
        if subscription is None:
            raise errors.Unavailable(f"host {host} is not connected to this conductor")
        request_id = uuid.uuid4().hex
        answer = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = (host, answer)
        try:
            subscription.put((CONSOLE, conductor_pb2.ConsoleRequest(
                request_id=request_id, instance_id=instance_id, length=length)))
            try:
                output, error = await asyncio.wait_for(answer, ANSWER_SECONDS)
            except TimeoutError:
                raise errors.Unavailable(f"host {host} did not answer the console request") from None
        finally:
            self.waiting.pop(request_id, None)
        if error:
            raise errors.FailedPrecondition(f"console of server {instance_id}: {error}")
        return output

    def answer(self, host: str, request_id: str, output: str, error: str) -> None:
        host_and_answer = self.waiting.get(request_id)
        if host_and_answer is None or host_and_answer[0] != host:
            raise errors.NotFound("console request", request_id)
        if not host_and_answer[1].done():
            host_and_answer[1].set_result((output, error))
