"""What one client can take from a server: the request size limit, open
streams per user, and a stream whose client stopped reading."""

import asyncio

import grpc
import pytest

from nimbus import metrics
from nimbus.rpc import interceptor
from nimbus.rpc.server import MAX_MESSAGE
from stack import C, Stack, expect, make_qcow2, user


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("limits")), hosts=1) as s:
        await s.flavor("m1.tiny")
        yield s


async def test_an_oversized_request_names_the_limit(stack):
    huge = C.CreateServerRequest(name="big", image_ref="cirros", flavor_ref="m1.tiny",
                                 user_data=b"x" * (MAX_MESSAGE + 1))
    err = await expect(stack.api.CreateServer(huge, metadata=user()),
                       grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "larger than max" in err.details() and str(MAX_MESSAGE) in err.details()
    # The server is fine afterwards.
    await stack.api.ListServers(C.ListServersRequest(), metadata=user())


async def test_open_watches_per_user_are_bounded(stack, monkeypatch):
    # The limit (1,000) lowered for the test: a setting, not a fault.
    limit = 8
    monkeypatch.setattr(interceptor, "MAX_STREAMS_PER_CALLER", limit)
    me = user("watcher", "w")
    calls = [stack.api.WatchServers(C.WatchServersRequest(), metadata=me) for _ in range(limit)]
    try:
        for call in calls:   # each open and SYNCED
            assert (await call.read()).type == C.WatchServersResponse.EVENT_TYPE_SYNCED
        one_more = stack.api.WatchServers(C.WatchServersRequest(), metadata=me)
        err = await expect(one_more.read(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert f"at most {limit} open streams" in err.details()
        # Another user is not affected.
        other = stack.api.WatchServers(C.WatchServersRequest(), metadata=user("bob", "w"))
        assert (await other.read()).type == C.WatchServersResponse.EVENT_TYPE_SYNCED
        other.cancel()
    finally:
        for call in calls:
            call.cancel()
    # Closed watches are given back: the user can watch again.
    async def reopened():
        while True:
            again = stack.api.WatchServers(C.WatchServersRequest(), metadata=me)
            try:
                return (await again.read()).type
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                await asyncio.sleep(0.05)   # the server has not seen every cancel yet
            finally:
                again.cancel()
    assert await asyncio.wait_for(reopened(), 30) == C.WatchServersResponse.EVENT_TYPE_SYNCED


async def test_a_client_that_stops_reading_is_cut_off(stack, tmp_path, monkeypatch):
    """DownloadImage of a 48 MB image, read once, then not at all: once grpc's
    buffers are full the server waits STREAM_WRITE_TIMEOUT (shortened here
    from 30 s: a setting, not a fault) and ends the stream with a status the
    client reads when it comes back."""
    monkeypatch.setattr(interceptor, "STREAM_WRITE_TIMEOUT", 1.0)
    path = make_qcow2(str(tmp_path / "big.qcow2"), "64M")
    with open(path, "r+b") as f:   # real bytes (not sparse holes) for the stream to carry
        f.seek(0, 2)
        f.write(b"\xa5" * (48 << 20))
    image = await stack.image(path, name="big", visibility="public")
    call = stack.api.DownloadImage(C.DownloadImageRequest(id=image.id), metadata=user())
    assert (await call.read()).chunk
    # Stalled: until the server has given up on us (its own RPC counter says so).
    cut = metrics.RPCS.labels("compute", "DownloadImage", "RESOURCE_EXHAUSTED")
    before = cut._value.get()
    async with asyncio.timeout(120):
        while cut._value.get() == before:
            await asyncio.sleep(0.2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        while (await call.read()) is not grpc.aio.EOF:
            pass
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "stopped reading" in err.value.details()
