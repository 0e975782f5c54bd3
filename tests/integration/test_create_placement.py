"""The create path's references and placement: server groups (hard and
soft policies across one multi-create), availability zones, forced hosts,
key pairs in the config drive, and the references that must exist."""

import json
import os
import subprocess

import grpc
import pytest

from nimbus.compute.v1 import aggregates_pb2 as A
from nimbus.compute.v1 import aggregates_pb2_grpc, keypairs_pb2, keypairs_pb2_grpc
from nimbus.compute.v1 import server_groups_pb2 as G
from nimbus.compute.v1 import server_groups_pb2_grpc
from stack import ADMIN, C, Stack, user, violation

from test_boot import NIL

SG = G.ServerGroup


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=3) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.groups = server_groups_pb2_grpc.ServerGroupServiceStub(s.channel)
        s.aggregates = aggregates_pb2_grpc.AggregateServiceStub(s.channel)
        s.keypairs = keypairs_pb2_grpc.KeypairServiceStub(s.channel)
        yield s


async def group(stack, policy, **rules) -> str:
    resp = await stack.groups.CreateServerGroup(G.CreateServerGroupRequest(
        name="g", policy=policy, rules=G.ServerGroupRules(**rules)), metadata=user())
    return resp.server_group.id


async def boot_many(stack, count, **kw):
    resp = await stack.api.CreateServer(C.CreateServerRequest(
        name="m", image_ref="cirros", flavor_ref="m1.tiny", min_count=count, max_count=count, **kw),
        metadata=user())
    return [await stack.wait_settled(s.id) for s in resp.servers]


@pytest.mark.parametrize("policy, hosts_used", [
    (SG.POLICY_ANTI_AFFINITY, 3), (SG.POLICY_AFFINITY, 1), (SG.POLICY_SOFT_ANTI_AFFINITY, 3),
    (SG.POLICY_SOFT_AFFINITY, 1)])
async def test_group_policies_hold_across_a_multi_create(stack, policy, hosts_used):
    gid = await group(stack, policy)
    done = await boot_many(stack, 3, scheduler_hints=C.SchedulerHints(group=gid))
    assert all(d.vm_state == C.VM_STATE_ACTIVE for d in done), [d.fault.message for d in done]
    assert len({d.host for d in done}) == hosts_used
    members = (await stack.groups.GetServerGroup(G.GetServerGroupRequest(id=gid),
                                                 metadata=user())).server_group.members
    assert set(members) == {d.id for d in done}
    # Deleting a member takes it out of the group.
    await stack.api.DeleteServer(C.DeleteServerRequest(id=done[0].id), metadata=user())
    await stack.wait_for(done[0].id, lambda s: s is None)
    members = (await stack.groups.GetServerGroup(G.GetServerGroupRequest(id=gid),
                                                 metadata=user())).server_group.members
    assert done[0].id not in members


async def test_anti_affinity_without_a_free_host_is_no_valid_host(stack):
    gid = await group(stack, SG.POLICY_ANTI_AFFINITY)
    await boot_many(stack, 3, scheduler_hints=C.SchedulerHints(group=gid))
    [fourth] = await boot_many(stack, 1, scheduler_hints=C.SchedulerHints(group=gid))
    assert fourth.vm_state == C.VM_STATE_ERROR
    assert "ServerGroupAntiAffinityFilter" in fourth.fault.message


async def test_zones_and_forced_hosts(stack):
    hosts = sorted(a.host for a in stack.agents.agents)
    agg = (await stack.aggregates.CreateAggregate(A.CreateAggregateRequest(
        name="rack-2", availability_zone="az2"), metadata=ADMIN)).aggregate
    await stack.aggregates.AddAggregateHost(A.AddAggregateHostRequest(id=agg.id, host=hosts[1]),
                                            metadata=ADMIN)
    done = await boot_many(stack, 2, availability_zone="az2")
    assert {d.host for d in done} == {hosts[1]} and {d.availability_zone for d in done} == {"az2"}
    forced = await stack.api.CreateServer(C.CreateServerRequest(
        name="f", image_ref="cirros", flavor_ref="m1.tiny", availability_zone=f"nova:{hosts[2]}"),
        metadata=ADMIN)
    assert (await stack.wait_settled(forced.servers[0].id)).host == hosts[2]


async def test_key_pair_reaches_the_config_drive(stack):
    kp = (await stack.keypairs.CreateKeypair(keypairs_pb2.CreateKeypairRequest(name="k1"),
                                             metadata=user())).keypair
    [done] = await boot_many(stack, 1, key_name="k1", config_drive=True,
                             personality=[C.Personality(path="/etc/motd", contents=b"hi")])
    assert done.vm_state == C.VM_STATE_ACTIVE and done.key_name == "k1"
    agent = next(a for a in stack.agents.agents if a.host == done.host)
    iso = os.path.join(agent.driver.instance_dir(done.id), "disk.config")
    meta = json.loads(subprocess.run(["isoinfo", "-R", "-i", iso, "-x",
                                      "/openstack/latest/meta_data.json"], capture_output=True).stdout)
    assert meta["public_keys"] == {"k1": kp.public_key}
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]


@pytest.mark.parametrize("kw, code, field", [
    (dict(key_name="nope"), grpc.StatusCode.NOT_FOUND, "keypair"),
    (dict(security_groups=["nope"]), grpc.StatusCode.NOT_FOUND, "security_group"),
    (dict(scheduler_hints=C.SchedulerHints(group=NIL)), grpc.StatusCode.NOT_FOUND, "server_group"),
    (dict(availability_zone="nope"), grpc.StatusCode.NOT_FOUND, "availability_zone"),
    (dict(metadata={f"k{i}": "v" for i in range(129)}), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    (dict(personality=[C.Personality(path=f"/f{i}", contents=b"x") for i in range(6)]),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "personality"),
    (dict(min_count=11, max_count=11), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
])
async def test_missing_references_and_quota(stack, kw, code, field):
    before = await stack.conductor.store.count("")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.CreateServer(C.CreateServerRequest(
            name="x", image_ref="cirros", flavor_ref="m1.tiny", **kw), metadata=user())
    assert err.value.code() == code
    if field:
        assert violation(err.value) == field
    assert await stack.conductor.store.count("") <= before + 1   # at most the lazy default group


async def test_multi_create_takes_what_quota_allows(stack):
    resp = await stack.api.CreateServer(C.CreateServerRequest(
        name="q", image_ref="cirros", flavor_ref="m1.tiny", min_count=2, max_count=15),
        metadata=user())
    assert len(resp.servers) == 10    # Nova's default instances quota


async def test_parallel_creates_never_exceed_the_quota(stack):
    import asyncio
    calls = [stack.api.CreateServer(C.CreateServerRequest(
        name=f"p{i}", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user("u", "race"))
        for i in range(20)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    created = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 10 and len(refused) == 10    # the default instances quota
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    from nimbus import quota
    assert (await quota.usage(stack.conductor.store, "race"))["instances"] == 10


@pytest.mark.parametrize("flavor, event, result", [
    ("m1.tiny", "compute__do_build_and_run_instance", "Success"),
    ("huge", "conductor_schedule_and_build_instances", "Error"),
])
async def test_the_create_action_records_how_the_build_ended(stack, flavor, event, result):
    from nimbus.compute.v1 import instance_actions_pb2 as IA
    from nimbus.compute.v1 import instance_actions_pb2_grpc
    await stack.flavor("huge", ram_mb=40000)
    resp = await stack.api.CreateServer(C.CreateServerRequest(
        name="a", image_ref="cirros", flavor_ref=flavor), metadata=ADMIN)
    await stack.wait_settled(resp.servers[0].id)
    actions = instance_actions_pb2_grpc.InstanceActionServiceStub(stack.channel)
    [action] = (await actions.ListInstanceActions(IA.ListInstanceActionsRequest(
        server_id=resp.servers[0].id), metadata=ADMIN)).actions
    got = (await actions.GetInstanceAction(IA.GetInstanceActionRequest(
        server_id=resp.servers[0].id, request_id=action.request_id), metadata=ADMIN)).action
    assert [(e.event, e.result) for e in got.events] == [(event, result)]
    assert got.events[0].finish_time.seconds >= got.events[0].start_time.seconds > 0
    if result == "Error":
        assert "No valid host" in got.events[0].details


async def test_late_server_group_check_on_the_host(stack):
    # Nova's race: two members placed at once can land wrong; the host asks
    # the conductor before building and reschedules a violation.
    from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
    from nimbus.rpc.auth import service_metadata
    from nimbus.rpc.server import channel
    gid = await group(stack, SG.POLICY_ANTI_AFFINITY)
    a, b = await boot_many(stack, 2, scheduler_hints=C.SchedulerHints(group=gid))
    assert a.host != b.host
    async with channel(stack.cfg.conductor_address) as ch:
        conductor = conductor_pb2_grpc.ConductorServiceStub(ch)
        meta = service_metadata(stack.cfg.service_token)
        await conductor.CheckServerGroup(conductor_pb2.CheckServerGroupRequest(
            host=a.host, instance_id=a.id), metadata=meta)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await conductor.CheckServerGroup(conductor_pb2.CheckServerGroupRequest(
                host=b.host, instance_id=a.id), metadata=meta)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Anti-affinity instance group policy was violated" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:   # agents only
            await conductor.CheckServerGroup(conductor_pb2.CheckServerGroupRequest(
                host=b.host, instance_id=a.id), metadata=user())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
