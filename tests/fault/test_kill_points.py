"""kill -9 at chosen points of boot and delete (nimbus.crashpoints: the
process really dies there, by os._exit, as kill -9 leaves it), then the
process starts again: the flow finishes and the end state is consistent
(consistency.py). The create points are those of a multi-create too large
for one transaction: its reservation is completed by the conductor."""

import asyncio

import grpc
import pytest

from consistency import assert_consistent
from nimbus.compute.v1 import quotas_pb2 as Q, quotas_pb2_grpc
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from stack import ADMIN, C, Stack, user

pytestmark = pytest.mark.fault

BIG = 45   # servers with user_data: 3 etcd ops each, more than one transaction holds
POINTS = [
    # flow, component, crash point
    ("create", "compute", "create:reserved"),        # quota taken, no server written
    ("create", "compute", "create:chunk-written"),   # the first chunk of servers written
    ("boot", "conductor", "conductor:build:claimed"),
    ("boot", "agent", "agent:build:networking"),
    ("boot", "agent", "agent:build:spawned"),        # domain running, ACTIVE not reported
    ("delete", "agent", "agent:delete:cleaned"),     # domain gone, finish_delete not sent
    ("delete", "conductor", "conductor:delete:removed"),
]


async def settled_all(s, ids, timeout=90):
    return await asyncio.gather(*(s.wait_settled(i, timeout=timeout) for i in ids))


@pytest.mark.parametrize("flow,component,point", POINTS, ids=[p[2] for p in POINTS])
async def test_kill_at_a_point_then_restart(etcd, tmp_path, qcow2_image, flow, component, point):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, vcpus=64, memory_mb=65536, node_ttl=3,
                     subprocesses=(component,), crash_at=point, reservation_timeout=2.0) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        crashed = {"compute": s.compute, "conductor": s.conductor, "agent": s.agents}[component]
        me = user(project="fault")
        if flow == "create":
            await quotas_pb2_grpc.QuotaServiceStub(s.channel).UpdateQuotas(Q.UpdateQuotasRequest(
                project_id="fault", quota_set=Q.QuotaSet(instances=BIG, cores=BIG, ram=-1)),
                metadata=ADMIN)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await s.api.CreateServer(C.CreateServerRequest(
                    name="big", image_ref="cirros", flavor_ref="m1.tiny", min_count=BIG,
                    max_count=BIG, user_data=b"#!/bin/sh\n" * 100), metadata=me)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE   # the API died under it
        else:
            resp = await s.api.CreateServer(C.CreateServerRequest(
                name="f", image_ref="cirros", flavor_ref="m1.tiny", min_count=3, max_count=3),
                metadata=me)
            ids = [srv.id for srv in resp.servers]
            if flow == "delete":
                await settled_all(s, ids)
                for i in ids:
                    await s.api.DeleteServer(C.DeleteServerRequest(id=i), metadata=me)
        assert await crashed.exited(timeout=60) == 137
        crashed.extra_env = {}
        await crashed.start(health=component != "agent")
        if flow == "create":
            # The conductor completes the abandoned reservation: every server the
            # quota was taken for exists (once) and builds.
            async with asyncio.timeout(60):
                while await s.store.count(keys.RESERVATIONS) or \
                        await s.store.count(keys.INSTANCES) < BIG:
                    await asyncio.sleep(0.2)
            ids = [k.removeprefix(keys.INSTANCES) for k, _ in
                   (await s.store.list(keys.INSTANCES, records_pb2.InstanceRecord))[0]]
            assert len(ids) == BIG
        if flow == "delete":
            for i in ids:
                await s.wait_for(i, lambda srv: srv is None, timeout=60)
        else:
            done = await settled_all(s, ids)
            assert {d.vm_state for d in done} == {C.VM_STATE_ACTIVE}, [d.fault.message for d in done]
        servers = await assert_consistent(s)
        assert len(servers) == (0 if flow == "delete" else len(ids))
