"""The API as a platform engineer meets it: real grpcurl, server reflection,
no .proto files anywhere on its command line."""

import asyncio
import json
import os
import sys

import pytest

from stack import Stack

GRPCURL = os.path.join(os.path.dirname(sys.executable), "grpcurl")
AUTH = "authorization: Bearer alice:demo"


async def grpcurl(address: str, *args: str, data: dict | None = None, auth: str | None = AUTH):
    argv = [GRPCURL, "-plaintext"]
    if auth:
        argv += ["-H", auth]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    proc = await asyncio.create_subprocess_exec(*argv, address, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


async def test_reflection_health_and_a_boot(stack):
    api = stack.cfg.api_address
    rc, out, _ = await grpcurl(api, "list", auth=None)
    assert rc == 0
    assert {"nimbus.compute.v1.ComputeService", "grpc.health.v1.Health"} <= set(out.split())
    rc, out, _ = await grpcurl(api, "describe", "nimbus.compute.v1.Server", auth=None)
    assert rc == 0 and "vm_state" in out

    for address in (api, stack.cfg.conductor_address, stack.cfg.scheduler_address):
        rc, out, _ = await grpcurl(address, "grpc.health.v1.Health/Check", auth=None)
        assert rc == 0 and json.loads(out)["status"] == "SERVING"

    rc, out, err = await grpcurl(api, "nimbus.compute.v1.ComputeService/CreateServer",
                                 data={"name": "web-1", "image_ref": "cirros", "flavor_ref": "m1.tiny"})
    assert rc == 0, err
    server = json.loads(out)["servers"][0]
    assert (server["vm_state"], server["task_state"]) == ("VM_STATE_BUILDING", "TASK_STATE_SCHEDULING")
    await stack.wait_settled(server["id"])
    rc, out, _ = await grpcurl(api, "nimbus.compute.v1.ComputeService/GetServer",
                               data={"id": server["id"]})
    got = json.loads(out)["server"]
    assert (got["vm_state"], got["power_state"]) == ("VM_STATE_ACTIVE", "POWER_STATE_RUNNING")
    assert got["host"]


@pytest.mark.parametrize("auth, data, code, text", [
    (None, {}, "Unauthenticated", "missing authorization"),
    ("authorization: Bearer nobody", {}, "Unauthenticated", "noauth tokens"),
    (AUTH, {"name": " ", "image_ref": "cirros", "flavor_ref": "m1.tiny"}, "InvalidArgument",
     '"field":"name"'),
    (AUTH, {"name": "x", "image_ref": "cirros", "flavor_ref": "nope"}, "NotFound", "flavor"),
])
async def test_errors_carry_code_and_field(stack, auth, data, code, text):
    rc, out, err = await grpcurl(stack.cfg.api_address, "nimbus.compute.v1.ComputeService/CreateServer",
                                 data=data, auth=auth)
    assert rc != 0
    assert f"Code: {code}" in err and text in err


@pytest.mark.parametrize("service", ["grpc.reflection.v1alpha.ServerReflection",
                                     "grpc.reflection.v1.ServerReflection"])
async def test_both_reflection_versions_list_the_services(stack, service):
    """Clients newer than grpcurl 1.8 ask grpc.reflection.v1 first."""
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2
    async with grpc.aio.insecure_channel(stack.cfg.api_address) as ch:
        call = ch.stream_stream(f"/{service}/ServerReflectionInfo",
                                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        responses = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name async for r in responses for s in r.list_services_response.service]
    assert "nimbus.compute.v1.ComputeService" in names
    assert "grpc.reflection.v1.ServerReflection" in names
