"""Input that is not even a message, or far too big to echo back, and hints
that name another project's servers: clear errors, never UNKNOWN."""

import uuid

import grpc
import pytest

from stack import ADMIN, C, Stack, expect, user


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


@pytest.mark.parametrize("method, kind", [
    ("/nimbus.compute.v1.ComputeService/GetServer", "unary"),
    ("/nimbus.compute.v1.ComputeService/WatchServers", "server-stream"),
    ("/nimbus.compute.v1.ComputeService/CreateImage", "client-stream"),
])
async def test_corrupt_payload_is_invalid_argument(stack, method, kind):
    garbage = b"\xff\xff\xff\xff\x0f\x01"   # a varint that never ends: no message parses it
    raw = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        if kind == "unary":
            await stack.channel.unary_unary(method, **raw)(garbage, metadata=ADMIN)
        elif kind == "server-stream":
            async for _ in stack.channel.unary_stream(method, **raw)(garbage, metadata=ADMIN):
                pass
        else:
            await stack.channel.stream_unary(method, **raw)(iter([garbage]), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "not a valid" in err.value.details()


async def test_errors_do_not_echo_huge_input(stack):
    err = await expect(stack.api.GetFlavor(C.GetFlavorRequest(ref="x" * 200_000), metadata=ADMIN),
                       grpc.StatusCode.NOT_FOUND, "flavor")
    assert len(err.details()) <= 1024


async def test_hints_naming_foreign_servers_are_not_found(stack):
    theirs = (await stack.api.CreateServer(C.CreateServerRequest(
        name="theirs", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user("bob", "other")))
    theirs = await stack.wait_settled(theirs.servers[0].id)
    for hints in (C.SchedulerHints(same_host=[theirs.id]),
                  C.SchedulerHints(different_host=[theirs.id]),
                  C.SchedulerHints(same_host=[str(uuid.uuid4())])):
        await expect(stack.api.CreateServer(C.CreateServerRequest(
            name="mine", image_ref="cirros", flavor_ref="m1.tiny", scheduler_hints=hints),
            metadata=user()), grpc.StatusCode.NOT_FOUND, "server")
    # The owner's own hint still works.
    mine = (await stack.api.CreateServer(C.CreateServerRequest(
        name="beside", image_ref="cirros", flavor_ref="m1.tiny",
        scheduler_hints=C.SchedulerHints(same_host=[theirs.id])), metadata=user("bob", "other")))
    assert (await stack.wait_settled(mine.servers[0].id)).host == theirs.host
