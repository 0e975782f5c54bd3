"""CreateServer's client_token: a retry returns the first call's servers and
creates nothing, across concurrent retries and a kill -9 of the API."""

import asyncio
import os
import signal
import time

import grpc
import pytest

from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.devstack import ProcessStack, seed
from nimbus.etcd import free_port
from stack import C, Stack, expect, user


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2) as s:
        await s.flavor("m1.tiny")
        await s.flavor("m1.small", ram_mb=1024)
        await s.image(qcow2_image)
        yield s


def request(token: str, **kw) -> C.CreateServerRequest:
    fields = dict(name="web", image_ref="cirros", flavor_ref="m1.tiny", min_count=1,
                  max_count=2, client_token=token)
    fields.update(kw)
    return C.CreateServerRequest(**fields)


async def test_retry_returns_the_same_servers(stack):
    first = await stack.api.CreateServer(request("tok-1"), metadata=user())
    again = await stack.api.CreateServer(request("tok-1"), metadata=user())
    assert [s.id for s in again.servers] == [s.id for s in first.servers]
    assert again.reservation_id == first.reservation_id
    listed = await stack.api.ListServers(C.ListServersRequest(), metadata=user())
    assert len(listed.servers) == 2
    # Tokens are per project: another project's same token is its own create.
    other = await stack.api.CreateServer(request("tok-1"), metadata=user("bob", "other"))
    assert {s.id for s in other.servers}.isdisjoint(s.id for s in first.servers)


@pytest.mark.parametrize("token, changed, field", [
    ("tok-2", {"flavor_ref": "m1.small"}, "client_token"),
    ("tok-3", {"max_count": 1}, "client_token"),
    ("has space", {}, "client_token"),
    ("x" * 65, {}, "client_token"),
])
async def test_token_misuse_is_invalid_argument(stack, token, changed, field):
    if changed:
        await stack.api.CreateServer(request(token), metadata=user())
    await expect(stack.api.CreateServer(request(token, **changed), metadata=user()),
                 grpc.StatusCode.INVALID_ARGUMENT, field)
    listed = await stack.api.ListServers(C.ListServersRequest(), metadata=user())
    assert len(listed.servers) == (2 if changed else 0)


async def test_concurrent_retries_create_once(stack):
    answers = await asyncio.gather(*(stack.api.CreateServer(request("tok-c"), metadata=user())
                                     for _ in range(8)))
    assert len({tuple(s.id for s in a.servers) for a in answers}) == 1
    listed = await stack.api.ListServers(C.ListServersRequest(), metadata=user())
    assert len(listed.servers) == 2


def test_retry_across_a_killed_api(tmp_path):
    """kill -9 the compute API while a create with a token is in flight,
    start it again, retry until it answers: exactly one set of servers."""
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("api", "conductor", "scheduler")}
    etcd_port = free_port()
    stack = ProcessStack(str(tmp_path / "state"), etcd_port=etcd_port, etcd_peer_port=free_port(),
                         api=ports["api"], conductor=ports["conductor"],
                         scheduler=ports["scheduler"], agent_args=["--simulate", "2"], quiet=True)
    try:
        stack.start()
        asyncio.run(seed(stack.api, stack.state_dir))
        with grpc.insecure_channel(stack.api) as ch:
            api = compute_pb2_grpc.ComputeServiceStub(ch)
            for round_, delay in enumerate((0.0, 0.01, 0.03)):   # 9 servers: quota is 10
                req = request(f"kill-{round_}", name=f"k{round_}", max_count=3)
                future = api.CreateServer.future(req, metadata=user(), timeout=10)
                time.sleep(delay)
                os.kill(stack.children["compute"].pid, signal.SIGKILL)
                stack.children["compute"].wait()
                try:
                    future.result()
                except grpc.RpcError:
                    pass   # the kill won the race: the client does not know
                stack._spawn("compute", "--listen", stack.api, "--noauth")
                stack.wait_serving("compute", stack.api)
                answer = api.CreateServer(req, metadata=user(), timeout=10)
                assert len(answer.servers) == 3
                listed = api.ListServers(C.ListServersRequest(), metadata=user(), timeout=10)
                mine = sorted(s.id for s in listed.servers if s.name.startswith(f"k{round_}-"))
                assert mine == sorted(s.id for s in answer.servers)
    finally:
        stack.stop()
