"""Every List RPC pages as ListServers does (nimbus.pagination): small pages
walk every item exactly once in the unpaged order, and a token is refused
when it does not decode or was issued for another list or another caller."""

import grpc
import pytest

from nimbus.compute.v1 import aggregates_pb2 as AG
from nimbus.compute.v1 import aggregates_pb2_grpc
from nimbus.compute.v1 import hypervisors_pb2 as H
from nimbus.compute.v1 import hypervisors_pb2_grpc
from nimbus.compute.v1 import keypairs_pb2 as K
from nimbus.compute.v1 import keypairs_pb2_grpc
from nimbus.compute.v1 import networks_pb2 as N
from nimbus.compute.v1 import networks_pb2_grpc
from nimbus.compute.v1 import security_groups_pb2 as SG
from nimbus.compute.v1 import security_groups_pb2_grpc
from nimbus.compute.v1 import server_groups_pb2 as G
from nimbus.compute.v1 import server_groups_pb2_grpc
from stack import ADMIN, C, Stack, expect, user

COUNT = 5

# (stub, list RPC, request, answer field, caller)
LISTS = {
    "flavors": ("compute", "ListFlavors", C.ListFlavorsRequest, "flavors", user()),
    "images": ("compute", "ListImages", C.ListImagesRequest, "images", user()),
    "keypairs": ("keypairs", "ListKeypairs", K.ListKeypairsRequest, "keypairs", user()),
    "networks": ("networks", "ListNetworks", N.ListNetworksRequest, "networks", user()),
    "subnets": ("networks", "ListSubnets", N.ListSubnetsRequest, "subnets", user()),
    "ports": ("networks", "ListPorts", N.ListPortsRequest, "ports", user()),
    "security_groups": ("security_groups", "ListSecurityGroups", SG.ListSecurityGroupsRequest,
                        "security_groups", user()),
    "server_groups": ("server_groups", "ListServerGroups", G.ListServerGroupsRequest,
                      "server_groups", user()),
    "aggregates": ("aggregates", "ListAggregates", AG.ListAggregatesRequest, "aggregates", ADMIN),
    "hypervisors": ("hypervisors", "ListHypervisors", H.ListHypervisorsRequest, "hypervisors",
                    ADMIN),
}


def _id(item) -> str:
    return getattr(item, "id", "") or getattr(item, "name", "") or item.host


@pytest.fixture(scope="module")
async def filled(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("pages")), hosts=COUNT) as s:
        stubs = {"compute": s.api,
                 "keypairs": keypairs_pb2_grpc.KeypairServiceStub(s.channel),
                 "networks": networks_pb2_grpc.NetworkServiceStub(s.channel),
                 "security_groups": security_groups_pb2_grpc.SecurityGroupServiceStub(s.channel),
                 "server_groups": server_groups_pb2_grpc.ServerGroupServiceStub(s.channel),
                 "aggregates": aggregates_pb2_grpc.AggregateServiceStub(s.channel),
                 "hypervisors": hypervisors_pb2_grpc.HypervisorServiceStub(s.channel)}
        for i in range(COUNT):
            await s.flavor(f"f-{i}", ram_mb=256 * (i % 2 + 1))   # equal sort keys: id breaks ties
            await s.image(qcow2_image, name=f"img-{i % 2}")
            await stubs["keypairs"].CreateKeypair(K.CreateKeypairRequest(name=f"k-{i}"),
                                                  metadata=user())
            network = (await stubs["networks"].CreateNetwork(
                N.CreateNetworkRequest(name=f"n-{i % 2}"), metadata=user())).network
            await stubs["networks"].CreateSubnet(N.CreateSubnetRequest(
                network_id=network.id, name="s", cidr=f"10.9.{i}.0/24"), metadata=user())
            await stubs["networks"].CreatePort(N.CreatePortRequest(network_id=network.id),
                                               metadata=user())
            await stubs["security_groups"].CreateSecurityGroup(
                SG.CreateSecurityGroupRequest(name=f"sg-{i}"), metadata=user())
            await stubs["server_groups"].CreateServerGroup(G.CreateServerGroupRequest(
                name=f"g-{i % 2}", policy=G.ServerGroup.POLICY_AFFINITY), metadata=user())
            await stubs["aggregates"].CreateAggregate(AG.CreateAggregateRequest(name=f"a-{i}"),
                                                      metadata=ADMIN)
        yield stubs


def _call(stubs, which):
    stub, rpc, request, answer, caller = LISTS[which]
    method = getattr(stubs[stub], rpc)
    return method, request, answer, caller


@pytest.mark.parametrize("which", sorted(LISTS))
async def test_small_pages_walk_everything_once(filled, which):
    method, request, answer, caller = _call(filled, which)
    whole = getattr(await method(request(), metadata=caller), answer)
    assert len(whole) >= COUNT
    walked, token, pages = [], "", 0
    while True:
        resp = await method(request(page_size=2, page_token=token), metadata=caller)
        page = getattr(resp, answer)
        assert len(page) <= 2
        walked += page
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    assert [_id(i) for i in walked] == [_id(i) for i in whole]
    assert pages == -(-len(whole) // 2)


@pytest.mark.parametrize("which", sorted(LISTS))
async def test_tokens_that_do_not_fit_are_refused(filled, which):
    method, request, answer, caller = _call(filled, which)
    await expect(method(request(page_token="not-a-token"), metadata=caller),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    await expect(method(request(page_size=-1), metadata=caller),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_size")
    # A token another list issued (to the same caller) is not one of this list's.
    other, *_ = _call(filled, "keypairs" if which != "keypairs" else "security_groups")
    other_request = LISTS["keypairs" if which != "keypairs" else "security_groups"][2]
    foreign = (await other(other_request(page_size=1), metadata=user())).next_page_token
    assert foreign
    await expect(method(request(page_token=foreign), metadata=caller),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")


async def test_a_token_is_bound_to_its_caller(filled):
    keypairs = filled["keypairs"]
    first = await keypairs.ListKeypairs(K.ListKeypairsRequest(page_size=1), metadata=user())
    assert first.next_page_token
    await expect(keypairs.ListKeypairs(K.ListKeypairsRequest(page_token=first.next_page_token),
                                       metadata=user("bob", "demo")),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")
