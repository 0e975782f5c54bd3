"""HypervisorService: hosts with capacity and usage for admins, and the
scheduling switch (a disabled host gets no new servers, keeps its own)."""

import grpc
import pytest

from nimbus.compute.v1 import hypervisors_pb2 as H
from nimbus.compute.v1 import hypervisors_pb2_grpc
from stack import ADMIN, C, Stack, expect, user


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.hv = hypervisors_pb2_grpc.HypervisorServiceStub(s.channel)
        yield s


async def boot(stack, name: str) -> C.Server:
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name=name, image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
    return await stack.wait_settled(server.id)


async def test_hosts_capacity_usage_and_the_switch(stack):
    listed = (await stack.hv.ListHypervisors(H.ListHypervisorsRequest(), metadata=ADMIN)).hypervisors
    assert [h.host for h in listed] == ["sim-001", "sim-002"]
    assert all(h.state == "up" and h.status == "enabled" and h.vcpus == 8
               and h.availability_zone == "nova" for h in listed)
    first = await boot(stack, "before")
    other = "sim-002" if first.host == "sim-001" else "sim-001"
    got = (await stack.hv.GetHypervisor(H.GetHypervisorRequest(host=first.host),
                                        metadata=ADMIN)).hypervisor
    assert (got.vcpus_used, got.memory_mb_used, got.running_servers) == (1, 512, 1)

    off = (await stack.hv.DisableComputeService(H.DisableComputeServiceRequest(
        host=other, reason="maintenance"), metadata=ADMIN)).hypervisor
    assert (off.status, off.disabled_reason) == ("disabled", "maintenance")
    for i in range(4):   # the scheduler would spread them; none goes to the disabled host
        assert (await boot(stack, f"during-{i}")).host == first.host
    # Servers already there are untouched; enabling makes room again.
    await stack.hv.EnableComputeService(H.EnableComputeServiceRequest(host=other), metadata=ADMIN)
    hosts = {(await boot(stack, f"after-{i}")).host for i in range(4)}
    assert other in hosts


@pytest.mark.parametrize("call, request_, who, code, field", [
    ("ListHypervisors", H.ListHypervisorsRequest(), user(), grpc.StatusCode.PERMISSION_DENIED, ""),
    ("DisableComputeService", H.DisableComputeServiceRequest(host="sim-001"), user(),
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("GetHypervisor", H.GetHypervisorRequest(host="nope"), ADMIN, grpc.StatusCode.NOT_FOUND, "host"),
    ("GetHypervisor", H.GetHypervisorRequest(), ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "host"),
    ("DisableComputeService", H.DisableComputeServiceRequest(host="sim-001", reason="x" * 256),
     ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "reason"),
    ("EnableComputeService", H.EnableComputeServiceRequest(host="nope"), ADMIN,
     grpc.StatusCode.NOT_FOUND, "host"),
])
async def test_bad_hypervisor_requests(stack, call, request_, who, code, field):
    await expect(getattr(stack.hv, call)(request_, metadata=who), code, field)
