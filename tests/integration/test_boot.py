"""Boot, delete, scheduling failures and races through the public API, on a
real etcd, the real libvirt test driver and real gRPC over loopback."""

import asyncio
import os

import grpc
import pytest

from nimbus.state.v1 import records_pb2
from stack import ADMIN, C, Stack, user, violation


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2) as s:
        s.tiny = await s.flavor("m1.tiny")
        s.cirros = await s.image(qcow2_image)
        yield s


def boot(name="web-1", image="cirros", flavor="m1.tiny", **kw):
    return C.CreateServerRequest(name=name, image_ref=image, flavor_ref=flavor, **kw)


async def test_boot_reaches_active_and_delete_cleans_up(stack):
    me = user()
    resp = await stack.api.CreateServer(boot(), metadata=me)
    server = resp.servers[0]
    assert (server.vm_state, server.task_state) == (C.VM_STATE_BUILDING, C.TASK_STATE_SCHEDULING)
    assert resp.reservation_id.startswith("r-")
    active = await stack.wait_settled(server.id)
    assert active.vm_state == C.VM_STATE_ACTIVE, active.fault
    assert active.power_state == C.POWER_STATE_RUNNING and active.host
    got = (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=me)).server
    assert got.vm_state == C.VM_STATE_ACTIVE and got.launched_at.seconds > 0

    agent = next(a for a in stack.agents.agents if a.host == active.host)
    inst_dir = agent.driver.instance_dir(server.id)
    assert os.path.exists(os.path.join(inst_dir, "disk"))
    with open(os.path.join(inst_dir, "libvirt.xml")) as f:
        assert f"<uuid>{server.id}</uuid>" in f.read()
    assert server.id in await agent.driver.instance_ids()
    store = stack.conductor.store
    assert await store.get(f"allocations/{active.host}/{server.id}", records_pb2.Allocation)

    deleting = (await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)).server
    assert deleting.task_state == C.TASK_STATE_DELETING
    await stack.wait_for(server.id, lambda s: s is None)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=me)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert server.id not in await agent.driver.instance_ids()
    assert not os.path.exists(inst_dir)
    assert await store.get(f"allocations/{active.host}/{server.id}", records_pb2.Allocation) is None
    usage = await store.get(f"providers/{active.host}", records_pb2.ProviderUsage)
    assert usage.msg.used == records_pb2.Resources() and usage.msg.consumers == 0


async def test_flavor_no_host_can_hold_ends_in_error_with_fault(stack):
    await stack.flavor("huge", vcpus=1, ram_mb=40000, disk_gb=1)   # within quota, above any host
    server = (await stack.api.CreateServer(boot(flavor="huge"), metadata=user())).servers[0]
    done = await stack.wait_settled(server.id)
    assert done.vm_state == C.VM_STATE_ERROR and not done.host
    assert done.fault.message.startswith("No valid host was found")
    assert "RamFilter" in done.fault.message
    # An ERROR server without a host deletes at once.
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, lambda s: s is None)


async def test_failed_spawns_reschedule_then_error_and_leave_nothing(stack, tmp_path):
    from stack import make_qcow2
    # A real fault: the image is larger than the flavor's root disk, on every host.
    await stack.image(make_qcow2(str(tmp_path / "big.qcow2"), "2G"), name="big")
    server = (await stack.api.CreateServer(boot(image="big"), metadata=user())).servers[0]
    done = await stack.wait_settled(server.id)
    assert done.vm_state == C.VM_STATE_ERROR and not done.host
    assert done.fault.message.startswith("Exceeded maximum number of retries")
    assert "larger than the flavor's root disk" in done.fault.message
    items, _ = await stack.conductor.store.list("allocations/", records_pb2.Allocation)
    assert items == []
    for agent in stack.agents.agents:
        assert server.id not in await agent.driver.instance_ids()
        assert not os.path.exists(agent.driver.instance_dir(server.id))


async def test_concurrent_boots_never_overcommit(etcd, tmp_path, qcow2_image):
    # Two hosts with room for two 512 MB servers each: 4 of 10 fit.
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, memory_mb=1024) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        calls = [s.api.CreateServer(boot(name=f"c{i}"), metadata=user()) for i in range(10)]
        ids = [r.servers[0].id for r in await asyncio.gather(*calls)]
        done = await asyncio.gather(*(s.wait_settled(i) for i in ids))
        active = [d for d in done if d.vm_state == C.VM_STATE_ACTIVE]
        errors = [d for d in done if d.vm_state == C.VM_STATE_ERROR]
        assert (len(active), len(errors)) == (4, 6)
        assert all("No valid host" in e.fault.message for e in errors)
        per_host = {}
        for d in active:
            per_host[d.host] = per_host.get(d.host, 0) + 1
        assert sorted(per_host.values()) == [2, 2]
        items, _ = await s.conductor.store.list("allocations/", records_pb2.Allocation)
        assert sum(v.msg.resources.memory_mb for _, v in items) == 4 * 512
        assert {v.msg.consumer_id for _, v in items} == {d.id for d in active}


async def test_conductor_restart_mid_build_settles_every_server(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, node_ttl=3,
                     sweep_interval=0.5) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        resp = await s.api.CreateServer(boot(min_count=6, max_count=6), metadata=user())
        await s.conductor.stop()          # mid-build: agents lose their stream and calls
        await asyncio.sleep(0.5)
        await s.start_conductor()         # a fresh conductor lists + watches and carries on
        done = await asyncio.gather(*(s.wait_settled(srv.id) for srv in resp.servers))
        assert all(d.vm_state in (C.VM_STATE_ACTIVE, C.VM_STATE_ERROR) for d in done)
        assert sum(d.vm_state == C.VM_STATE_ACTIVE for d in done) >= 1, [d.fault.message for d in done]


async def test_dead_host_work_is_rescheduled(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, node_ttl=2, sweep_interval=0.3) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        dead = s.agents.agents[0].host
        s.agents.tasks[0].cancel()    # the agent dies: no stream, no lease refresh
        resp = await s.api.CreateServer(boot(min_count=4, max_count=4), metadata=user())
        done = await asyncio.gather(*(s.wait_settled(srv.id, timeout=40) for srv in resp.servers))
        assert all(d.vm_state == C.VM_STATE_ACTIVE for d in done), [d.fault.message for d in done]
        assert {d.host for d in done} == {s.agents.agents[1].host} != {dead}
        items, _ = await s.conductor.store.list(f"allocations/{dead}/", records_pb2.Allocation)
        assert items == []


async def test_multi_create_names_and_reservation(stack):
    resp = await stack.api.CreateServer(boot(name="batch", min_count=3, max_count=3),
                                        metadata=user())
    assert [s.name for s in resp.servers] == ["batch-1", "batch-2", "batch-3"]
    assert {s.reservation_id for s in resp.servers} == {resp.reservation_id}
    listed = await stack.api.ListServers(C.ListServersRequest(reservation_id=resp.reservation_id),
                                         metadata=user())
    assert len(listed.servers) == 3
    for s in resp.servers:
        done = await stack.wait_settled(s.id)
        assert done.vm_state == C.VM_STATE_ACTIVE, done.fault


async def test_projects_are_isolated_and_auth_is_required(stack):
    mine = (await stack.api.CreateServer(boot(), metadata=user("alice", "p1"))).servers[0]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.GetServer(C.GetServerRequest(id=mine.id), metadata=user("bob", "p2"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    theirs = await stack.api.ListServers(C.ListServersRequest(), metadata=user("bob", "p2"))
    assert mine.id not in {s.id for s in theirs.servers}
    everyone = await stack.api.ListServers(C.ListServersRequest(all_projects=True), metadata=ADMIN)
    assert mine.id in {s.id for s in everyone.servers}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.ListServers(C.ListServersRequest(all_projects=True), metadata=user())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.ListServers(C.ListServersRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.CreateFlavor(C.CreateFlavorRequest(flavor=C.Flavor(
            name="x", vcpus=1, ram_mb=1)), metadata=user())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_watch_lists_existing_then_synced_then_changes(stack):
    first = (await stack.api.CreateServer(boot(name="a"), metadata=user())).servers[0]
    await stack.wait_settled(first.id)
    call = stack.api.WatchServers(C.WatchServersRequest(), metadata=user())
    async with asyncio.timeout(20):
        events = [await call.read()]
        while events[-1].type != C.WatchServersResponse.EVENT_TYPE_SYNCED:
            events.append(await call.read())
        assert [e.server.id for e in events[:-1]] == [first.id]
        second = (await stack.api.CreateServer(boot(name="b"), metadata=user())).servers[0]
        states = []
        while C.VM_STATE_ACTIVE not in states:
            event = await call.read()
            assert event.server.id == second.id
            states.append(event.server.vm_state)
        assert states[0] == C.VM_STATE_BUILDING
    call.cancel()


NIL = "00000000-0000-4000-8000-000000000001"




@pytest.mark.parametrize("request_kw, code, field", [
    (dict(name=""), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    (dict(name="   "), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    (dict(name="x" * 256), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    (dict(flavor=""), grpc.StatusCode.INVALID_ARGUMENT, "flavor_ref"),
    (dict(flavor="m9.nope"), grpc.StatusCode.NOT_FOUND, "flavor"),
    (dict(image=""), grpc.StatusCode.INVALID_ARGUMENT, "image_ref"),
    (dict(image="no-such-image"), grpc.StatusCode.NOT_FOUND, "image"),
    (dict(min_count=-1), grpc.StatusCode.INVALID_ARGUMENT, "min_count"),
    (dict(min_count=3, max_count=2), grpc.StatusCode.INVALID_ARGUMENT, "max_count"),
    (dict(max_count=10001), grpc.StatusCode.INVALID_ARGUMENT, "max_count"),
    (dict(metadata={"k" * 256: "v"}), grpc.StatusCode.INVALID_ARGUMENT, f"metadata[{'k' * 256!r}]"),
    (dict(metadata={"k": "v" * 256}), grpc.StatusCode.INVALID_ARGUMENT, "metadata['k']"),
    (dict(user_data=b"x" * 65536), grpc.StatusCode.INVALID_ARGUMENT, "user_data"),
    (dict(description="d" * 256), grpc.StatusCode.INVALID_ARGUMENT, "description"),
    (dict(access_ipv4="1.2.3"), grpc.StatusCode.INVALID_ARGUMENT, "access_ipv4"),
    (dict(access_ipv6="1.2.3.4"), grpc.StatusCode.INVALID_ARGUMENT, "access_ipv6"),
    (dict(personality=[C.Personality(path=" ", contents=b"x")]), grpc.StatusCode.INVALID_ARGUMENT,
     "personality[0].path"),
    (dict(networks=[C.NetworkRequest(uuid="net")]), grpc.StatusCode.INVALID_ARGUMENT,
     "networks[0].uuid"),
    (dict(networks=[C.NetworkRequest(uuid=NIL, fixed_ip="10.0.0.300")]),
     grpc.StatusCode.INVALID_ARGUMENT, "networks[0].fixed_ip"),
    (dict(networks_mode="sometimes"), grpc.StatusCode.INVALID_ARGUMENT, "networks_mode"),
    (dict(networks_mode="auto", networks=[C.NetworkRequest(uuid=NIL)]),
     grpc.StatusCode.INVALID_ARGUMENT, "networks_mode"),
    (dict(networks=[C.NetworkRequest(uuid=NIL)]), grpc.StatusCode.NOT_FOUND, "network"),
    (dict(block_device_mapping=[C.BlockDeviceMappingLegacy(device_name="vdb", volume_id=NIL)],
          block_device_mapping_v2=[C.BlockDeviceMapping(source_type="blank", volume_size=1)]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping"),
    (dict(block_device_mapping=[C.BlockDeviceMappingLegacy(
        device_name="vdb", volume_id=NIL, delete_on_termination="maybe")]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping[0].delete_on_termination"),
    (dict(block_device_mapping_v2=[C.BlockDeviceMapping(source_type="blank", device_name="Bad Name")]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping_v2[0].device_name"),
    (dict(block_device_mapping_v2=[C.BlockDeviceMapping(source_type="tape")]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping_v2[0].source_type"),
    (dict(block_device_mapping_v2=[C.BlockDeviceMapping(source_type="volume", uuid=NIL,
                                                        volume_size=-1)]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping_v2[0].volume_size"),
    (dict(block_device_mapping_v2=[C.BlockDeviceMapping(source_type="volume", uuid=NIL)]),
     grpc.StatusCode.NOT_FOUND, "volume"),
    (dict(availability_zone="nova:host-1"), grpc.StatusCode.PERMISSION_DENIED, ""),
    (dict(availability_zone="a:b:c:d"), grpc.StatusCode.INVALID_ARGUMENT, "availability_zone"),
    (dict(scheduler_hints=C.SchedulerHints(group="g")), grpc.StatusCode.INVALID_ARGUMENT,
     "scheduler_hints.group"),
    (dict(scheduler_hints=C.SchedulerHints(same_host=["x"])), grpc.StatusCode.INVALID_ARGUMENT,
     "scheduler_hints.same_host[0]"),
    (dict(kernel_id="no-such-kernel"), grpc.StatusCode.NOT_FOUND, "image"),
])
async def test_bad_create_requests_are_refused_and_leave_nothing(stack, request_kw, code, field):
    kw = dict(name="ok", image="cirros", flavor="m1.tiny")
    kw.update(request_kw)
    before = await stack.conductor.store.count("")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.api.CreateServer(boot(kw.pop("name"), kw.pop("image"), kw.pop("flavor"), **kw),
                                     metadata=user())
    assert err.value.code() == code
    assert violation(err.value) == field
    assert await stack.conductor.store.count("") == before


@pytest.mark.parametrize("call, request_msg, code", [
    ("GetServer", C.GetServerRequest(id=""), grpc.StatusCode.INVALID_ARGUMENT),
    ("GetServer", C.GetServerRequest(id="not-a-uuid"), grpc.StatusCode.NOT_FOUND),
    ("GetServer", C.GetServerRequest(id="00000000-0000-0000-0000-000000000000"),
     grpc.StatusCode.NOT_FOUND),
    ("DeleteServer", C.DeleteServerRequest(id="00000000-0000-0000-0000-000000000000"),
     grpc.StatusCode.NOT_FOUND),
    ("GetFlavor", C.GetFlavorRequest(ref="nope"), grpc.StatusCode.NOT_FOUND),
    ("GetImage", C.GetImageRequest(ref="nope"), grpc.StatusCode.NOT_FOUND),
    ("ListServers", C.ListServersRequest(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT),
])
async def test_bad_lookups(stack, call, request_msg, code):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stack.api, call)(request_msg, metadata=user())
    assert err.value.code() == code


async def test_delete_is_idempotent_and_races_with_build(stack):
    server = (await stack.api.CreateServer(boot(), metadata=user())).servers[0]
    # Delete at once, while the build is in flight, twice.
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    try:
        await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND   # already gone: also fine
    await stack.wait_for(server.id, lambda s: s is None)
    items, _ = await stack.conductor.store.list("allocations/", records_pb2.Allocation)
    assert items == []
    for agent in stack.agents.agents:
        assert server.id not in await agent.driver.instance_ids()


async def test_bad_images_are_refused(stack, tmp_path):
    raw = tmp_path / "x.raw"
    raw.write_bytes(b"\0" * 4096)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.image(str(raw), name="liar", disk_format="qcow2")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    images = await stack.api.ListImages(C.ListImagesRequest(), metadata=ADMIN)
    assert "liar" not in {i.name for i in images.images}


async def test_admin_pass_is_returned_once_and_reservation_only_answers(stack):
    resp = await stack.api.CreateServer(boot(name="pw"), metadata=user())
    assert len(resp.admin_pass) == 12 and resp.admin_pass.isalnum()
    got = await stack.api.GetServer(C.GetServerRequest(id=resp.servers[0].id), metadata=user())
    assert resp.admin_pass.encode() not in got.server.SerializeToString()
    record = await stack.conductor.store.get(f"instances/{resp.servers[0].id}",
                                             records_pb2.InstanceRecord)
    assert resp.admin_pass.encode() not in record.msg.SerializeToString()   # never stored
    given = await stack.api.CreateServer(boot(name="pw2", admin_pass="s3cret-pass"), metadata=user())
    assert given.admin_pass == "s3cret-pass"
    only = await stack.api.CreateServer(boot(name="r", return_reservation_id=True), metadata=user())
    assert only.reservation_id and not only.servers
    listed = await stack.api.ListServers(C.ListServersRequest(reservation_id=only.reservation_id),
                                         metadata=user())
    assert len(listed.servers) == 1


async def test_create_keeps_request_details_on_the_server(stack):
    resp = await stack.api.CreateServer(boot(
        name="d", description="web tier", access_ipv4="192.0.2.10", access_ipv6="2001:db8::10",
        security_groups=["default", "default"]), metadata=user())
    server = resp.servers[0]
    assert (server.description, server.access_ipv4, server.access_ipv6) == (
        "web tier", "192.0.2.10", "2001:db8::10")
    assert list(server.security_groups) == ["default"]
