"""CreateServer's idempotency tokens (EC2's ClientToken).

The token's record is written in the create's own transaction (compare: the
key is absent), so a create and its token appear together or not at all: a
retry after a crash either finds the token and replays, or creates afresh,
never both. Records live on a lease shared by the tokens of one time bucket,
so they disappear by themselves between WINDOW and WINDOW + BUCKET after
they were written, at the cost of one lease grant per bucket, not one per
create."""

from __future__ import annotations

import hashlib
import time

from nimbus import errors
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store

WINDOW = 24 * 3600      # a retry within this many seconds replays
BUCKET = 3600           # tokens written within one bucket share a lease
MAX_TOKEN = 64


def check_token(token: str) -> None:
    if len(token) > MAX_TOKEN or not all(33 <= ord(c) < 127 for c in token):
        raise errors.InvalidArgument(
            "client_token", f"must be at most {MAX_TOKEN} printable ASCII characters, no spaces")


def request_hash(request: C.CreateServerRequest) -> bytes:
    """What "the same request" means: every field but the token itself."""
    copy = C.CreateServerRequest()
    copy.CopyFrom(request)
    copy.client_token = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


def token_key(project_id: str, token: str) -> str:
    return keys.client_token(project_id, hashlib.sha256(token.encode()).hexdigest()[:32])


class TokenTaken(Exception):
    """A concurrent create with the same token committed first: replay it."""


class Tokens:
    def __init__(self, store: Store, window: int = WINDOW, bucket: int = BUCKET):
        self.store = store
        self.window = window
        self.bucket = bucket
        self._lease = 0
        self._lease_until = 0.0

    async def lease(self) -> int:
        """A lease that outlives every token given it by at least `window`."""
        if time.monotonic() >= self._lease_until:
            self._lease = await self.store.grant(self.window + self.bucket)
            self._lease_until = time.monotonic() + self.bucket
        return self._lease

    async def find(self, key: str, request: C.CreateServerRequest) -> records_pb2.ClientToken | None:
        """The token's record when this request was already made; None when
        the token is new; INVALID_ARGUMENT when it came with another request."""
        found = await self.store.get(key, records_pb2.ClientToken)
        if found is None:
            return None
        if found.msg.request_sha256 != request_hash(request):
            raise errors.InvalidArgument(
                "client_token", "was already used with a different request in this project")
        return found.msg

    async def replay(self, record: records_pb2.ClientToken) -> C.CreateServerResponse:
        """The first call's answer: its servers that still exist, fresh."""
        response = C.CreateServerResponse(reservation_id=record.reservation_id)
        for server_id in record.server_ids:
            found = await self.store.get(keys.instance(server_id), records_pb2.InstanceRecord)
            if found is not None:
                response.servers.append(found.msg.server)
        return response
