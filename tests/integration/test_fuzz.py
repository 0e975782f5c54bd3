"""Property-based fuzzing of every unary RPC the API port serves, driven by
the protobuf descriptors: whatever the request, the answer is never
INTERNAL or UNKNOWN, and the server stays healthy. Bounded and derandomized
so CI runs the same examples every time."""

import asyncio

import grpc
import pytest
from google.protobuf import descriptor as d
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nimbus.compute.v1 import (aggregates_pb2, compute_pb2, ec2_pb2, hypervisors_pb2,
                               instance_actions_pb2, keypairs_pb2, migrations_pb2, networks_pb2,
                               quotas_pb2, security_groups_pb2, server_groups_pb2)
from stack import ADMIN, Stack, user

MODULES = (compute_pb2, aggregates_pb2, ec2_pb2, hypervisors_pb2, instance_actions_pb2,
           keypairs_pb2, migrations_pb2, networks_pb2, quotas_pb2, security_groups_pb2,
           server_groups_pb2)
UNARY = [(service, method) for module in MODULES for service in module.DESCRIPTOR.services_by_name.values()
         for method in service.methods if not method.client_streaming and not method.server_streaming]
WORDS = st.sampled_from(["", "cirros", "m1.tiny", "default", "a" * 300, "../x", "x/y", "é",
                         "00000000-0000-0000-0000-000000000000", "-1", "10.0.0.0/24", "*"])
SCALARS = {
    d.FieldDescriptor.TYPE_STRING: st.one_of(WORDS, st.text(max_size=20)),
    d.FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    d.FieldDescriptor.TYPE_BOOL: st.booleans(),
    d.FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    d.FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
}
INTS = st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]), st.integers(-5, 100))


def value_of(field: d.FieldDescriptor, depth: int):
    if field.type == d.FieldDescriptor.TYPE_MESSAGE:
        return message_of(field.message_type, depth + 1)
    if field.type == d.FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values] + [99])
    if field.type in SCALARS:
        return SCALARS[field.type]
    unsigned = field.type in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_UINT64,
                              d.FieldDescriptor.TYPE_FIXED32, d.FieldDescriptor.TYPE_FIXED64)
    return st.integers(0, 2**31 - 1) if unsigned else INTS


def message_of(desc: d.Descriptor, depth: int = 0):
    """A strategy of dicts -> messages of `desc` (fields left out at random)."""
    from google.protobuf import message_factory
    cls = message_factory.GetMessageClass(desc)
    if depth > 2 or desc.full_name.startswith("google.protobuf."):
        return st.just(cls())
    parts = {}
    for field in desc.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = value_of(field.message_type.fields_by_name["key"], depth)
            val = value_of(field.message_type.fields_by_name["value"], depth)
            parts[field.name] = st.dictionaries(key, val, max_size=2)
        elif field.is_repeated:
            parts[field.name] = st.lists(value_of(field, depth), max_size=2)
        else:
            parts[field.name] = value_of(field, depth)

    @st.composite
    def build(draw):
        msg = cls()
        for name, strategy in parts.items():
            if not draw(st.booleans()):
                continue
            value = draw(strategy)
            field = desc.fields_by_name[name]
            if isinstance(value, dict):
                target = getattr(msg, name)
                for k, v in value.items():
                    if hasattr(v, "DESCRIPTOR"):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif isinstance(value, list):
                target = getattr(msg, name)
                for v in value:
                    target.append(v) if not hasattr(v, "DESCRIPTOR") else target.add().CopyFrom(v)
            elif hasattr(value, "DESCRIPTOR"):
                getattr(msg, name).CopyFrom(value)
            elif field.containing_oneof is None or not msg.HasField(field.containing_oneof.name):
                setattr(msg, name, value)
        return msg
    return build()


@pytest.fixture(scope="module")
async def fuzzed(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("fuzz")), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


@pytest.mark.parametrize("service, method", UNARY, ids=lambda x: getattr(x, "name", x))
async def test_no_request_is_an_internal_error(fuzzed, service, method):
    from google.protobuf import message_factory
    response_cls = message_factory.GetMessageClass(method.output_type)
    call = fuzzed.channel.unary_unary(f"/{service.full_name}/{method.name}",
                                      request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=response_cls.FromString)
    loop = asyncio.get_running_loop()
    seen: list = []
    sent = [0]

    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=message_of(method.input_type), who=st.sampled_from([ADMIN, user()]))
    def check(request, who):
        async def one():
            sent[0] += 1
            try:
                await call(request, metadata=who, timeout=10)
            except grpc.aio.AioRpcError as err:
                seen.append((err.code(), err.details(), request))
        asyncio.run_coroutine_threadsafe(one(), loop).result(30)

    await asyncio.to_thread(check)
    assert sent[0] >= 2   # the examples really went out
    broken = [(code.name, details, str(req)[:300]) for code, details, req in seen
              if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)]
    assert not broken, broken
    health = health_pb2_grpc.HealthStub(fuzzed.channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == \
        health_pb2.HealthCheckResponse.SERVING
