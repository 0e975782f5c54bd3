"""Records stay small and every request stays inside etcd's limits: paged
lists (one snapshot), transactions checked against --max-txn-ops and
--max-request-bytes with an error naming the limit, bulky user_data and
injected files stored apart, and a project filled to its quota with them
stalls no one, across a restart of every process. Real etcd, real
processes."""

import asyncio
import glob
import os

import grpc
import pytest
from aetcd import rpc as etcd_rpc

from nimbus import errors
from nimbus.compute.v1 import quotas_pb2 as Q, quotas_pb2_grpc
from nimbus.compute.v1 import security_groups_pb2 as SG, security_groups_pb2_grpc
from nimbus.services.scheduler.main import SchedulerProcess
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import MAX_REQUEST_BYTES, MAX_TXN_OPS
from stack import ADMIN, C, Stack, user


def value(i: int, size: int = 16) -> etcd_rpc.PutRequest:
    return etcd_rpc.PutRequest(key=str(i).encode(), value=b"x" * size)


async def test_a_paged_list_is_one_snapshot_while_the_prefix_changes(store):
    await asyncio.gather(*(store.txn([], [store.put(f"p/{i:04d}", value(i))]) for i in range(600)))

    async def churn():
        for i in range(600, 900):
            await store.txn([], [store.put(f"p/{i:04d}", value(i)), store.delete(f"p/{i - 600:04d}")])
    writer = asyncio.create_task(churn())
    await asyncio.sleep(0)
    kvs, revision = await store.list_raw("p/", page_keys=7)
    await writer
    # What one range read at that revision holds (etcd keeps it: no compaction yet).
    key = store.key("p/")
    whole = await store._kv.Range(etcd_rpc.RangeRequest(
        key=key, range_end=key[:-1] + b"0", revision=revision))
    assert [kv.key for kv in kvs] == [kv.key for kv in whole.kvs]
    assert len(kvs) == 600 and revision < (await store.list_raw("p/"))[1]


async def test_an_informer_starts_over_a_prefix_larger_than_a_grpc_message(store):
    # 24 records of 400 KB: 9.6 MB, over gRPC's default 4 MiB message.
    big = etcd_rpc.PutRequest(key=b"k", value=b"y" * 400_000)
    for i in range(24):
        await store.txn([], [store.put(f"big/{i:02d}", big)])
    informer = Informer(store, "big/", etcd_rpc.PutRequest)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        assert len(informer.items) == 24
    finally:
        task.cancel()
    await store.txn([], [store.delete("big/", prefix=True)])


@pytest.mark.parametrize("ops, limit", [
    ([("k", 16)] * (MAX_TXN_OPS + 1), "--max-txn-ops"),
    ([("k", MAX_REQUEST_BYTES + 1)], "--max-request-bytes"),
])
async def test_a_transaction_over_an_etcd_limit_names_the_limit(store, ops, limit):
    with pytest.raises(errors.ResourceExhausted) as err:
        await store.txn([], [store.put(f"lim/{i}", value(i, size)) for i, (_, size) in enumerate(ops)])
    assert limit in str(err.value)
    assert await store.count("lim/") == 0


MAX_USER_DATA = 65535
FILES = [C.Personality(path=f"/etc/f{i}", contents=bytes([65 + i]) * 10240) for i in range(5)]


async def all_servers(api, metadata, **kw) -> list:
    """ListServers, every page."""
    servers, token = [], ""
    while True:
        page = await api.ListServers(C.ListServersRequest(page_size=25, page_token=token, **kw),
                                     metadata=metadata)
        servers += page.servers
        token = page.next_page_token
        if not token:
            return servers


async def test_a_project_full_of_bulky_servers_stalls_no_one(etcd, tmp_path, qcow2_image):
    """40 servers with 64 KB of user_data and 5 x 10 KB files (4.6 MB of
    guest data; before: 9.5 MB under instances/ broke ListServers and the
    informers) in ONE create: all built, records small, other projects'
    creates ACTIVE, every List answers, and after kill -9 of every process
    all comes back SYNCED."""
    async with Stack(etcd.endpoint, str(tmp_path), hosts=4, vcpus=64, memory_mb=65536,
                     subprocesses=("compute", "conductor", "agent")) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        quotas = quotas_pb2_grpc.QuotaServiceStub(s.channel)
        await quotas.UpdateQuotas(Q.UpdateQuotasRequest(
            project_id="bulky", quota_set=Q.QuotaSet(instances=40, cores=40, ram=-1)), metadata=ADMIN)
        marker = b"#cloud-config marker-7f3a\n"
        resp = await s.api.CreateServer(C.CreateServerRequest(
            name="bulk", image_ref="cirros", flavor_ref="m1.tiny", min_count=1, max_count=40,
            config_drive=True, user_data=marker + b"u" * (MAX_USER_DATA - len(marker)),
            personality=FILES), metadata=user(project="bulky"))
        assert len(resp.servers) == 40   # the quota, not a transaction, is the ceiling
        # Watched records stay small; the guest data is apart, once per server.
        kvs, _ = await s.store.list_raw(keys.INSTANCES)
        assert len(kvs) == 40 and max(len(kv.value) for kv in kvs) < 4096
        assert await s.store.count(keys.BUILD_INPUTS) == 40
        assert await s.store.count(keys.RESERVATIONS) == 0
        done = await asyncio.gather(*(s.wait_settled(srv.id, timeout=120) for srv in resp.servers))
        assert {d.vm_state for d in done} == {C.VM_STATE_ACTIVE}, [d.fault.message for d in done]
        # The agent got the user_data through the assignment stream: on the config drive.
        isos = glob.glob(os.path.join(str(tmp_path), "**", "disk.config"), recursive=True)
        assert len(isos) >= 40 and all(marker in open(p, "rb").read() for p in isos[:3])
        # The project is full: one more is a quota error, not a stall.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.api.CreateServer(C.CreateServerRequest(
                name="over", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user(project="bulky"))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        async def others_work(tag: str) -> None:
            other = await s.api.CreateServer(C.CreateServerRequest(
                name=f"small-{tag}", image_ref="cirros", flavor_ref="m1.tiny"),
                metadata=user(project="other"))
            settled = await s.wait_settled(other.servers[0].id, timeout=60)
            assert settled.vm_state == C.VM_STATE_ACTIVE
            assert len(await all_servers(s.api, user(project="bulky"))) == 40
            assert len(await all_servers(s.api, ADMIN, all_projects=True)) >= 41
            groups = security_groups_pb2_grpc.SecurityGroupServiceStub(s.channel)
            await groups.CreateSecurityGroup(SG.CreateSecurityGroupRequest(name=f"sg-{tag}"),
                                             metadata=user(project="other"))
        await others_work("before")

        # kill -9 of every process, then all start again from etcd.
        for proc in (s.agents, s.conductor, s.compute):
            proc.kill()
        await s.scheduler.stop()
        s.scheduler = await SchedulerProcess(s._for(s.cfg.scheduler_address)).start()
        await s.conductor.start()
        await s.compute.start()
        await s.agents.start(health=False)
        await s.wait_hosts(4, timeout=60)
        await others_work("after")
        for d in done:   # the restart changed nothing of theirs
            rec = await s.store.get(keys.instance(d.id), records_pb2.InstanceRecord)
            assert rec.msg.server.vm_state == C.VM_STATE_ACTIVE and rec.msg.build_inputs_apart
