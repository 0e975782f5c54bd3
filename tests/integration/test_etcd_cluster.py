"""etcd as a real cluster and at its limits: three Debian etcd 3.4.23
members on free ports with the leader killed (kill -9) during a boot storm;
watches that resume at a compacted revision and list again, during a storm
too; the NOSPACE alarm of a small --quota-backend-bytes etcd seen as
RESOURCE_EXHAUSTED with a clear message, and recovery after compaction,
defragmentation and disarm. Real processes, nothing mocked."""

import asyncio
import os
import signal

import grpc
import pytest
from aetcd import rpc as etcd_rpc

from consistency import assert_consistent
from nimbus import errors, metrics
from nimbus.etcd import EmbeddedEtcd, EtcdCluster
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import DELETED, UPSERT, Informer
from nimbus.store.store import Store
from stack import C, Stack, user

PROJECTS = 8          # x 10 servers (Nova's default quota)


@pytest.fixture
def private_etcd(tmp_path):
    """An etcd of this test's own: these tests compact, kill and fill it."""
    server = EmbeddedEtcd(str(tmp_path / "etcd"), log_file=str(tmp_path / "etcd.log"),
                          quota_backend_bytes=8 << 20).start()
    yield server
    if server.process and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
def cluster(tmp_path):
    members = EtcdCluster(str(tmp_path / "etcd"), 3, log_dir=str(tmp_path)).start()
    yield members
    members.stop()


async def compact_now(store: Store) -> int:
    """Compact etcd's history up to now (already there: nothing to do)."""
    revision = await store.current_revision()
    try:
        await etcd_rpc.KVStub(store.client.channel).Compact(
            etcd_rpc.CompactionRequest(revision=revision, physical=True))
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.OUT_OF_RANGE:
            raise
    return revision


RETRIED: list[str] = []   # what users saw of the failover (printed by the test)


async def storm(s: Stack, tag: str) -> dict[str, list[str]]:
    """Ten single creates per project, one after the other, PROJECTS projects
    at once, each with an idempotency token: a create that meets UNAVAILABLE
    is sent again and can never make a duplicate."""
    async def create(project: str, i: int) -> str:
        request = C.CreateServerRequest(name=f"{tag}-{i}", image_ref="cirros", flavor_ref="m1.tiny",
                                        client_token=f"{tag}-{project}-{i}")
        for _ in range(60):
            try:
                resp = await s.api.CreateServer(request, metadata=user(project=project), timeout=15)
                return resp.servers[0].id
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), \
                    exc.details()
                RETRIED.append(f"{exc.code().name}: {exc.details()}")
                await asyncio.sleep(0.5)
        raise AssertionError(f"{project}: create never answered")

    async def one(project: str) -> list[str]:
        return [await create(project, i) for i in range(10)]
    projects = [f"{tag}-{p}" for p in range(PROJECTS)]
    return dict(zip(projects, await asyncio.gather(*(one(p) for p in projects))))


async def check_storm(s: Stack, created: dict[str, list[str]]) -> None:
    """Every server ACTIVE or ERROR with a fault, once per project's ten, none lost."""
    ids = [i for group in created.values() for i in group]
    done = await asyncio.gather(*(s.wait_settled(i, timeout=180) for i in ids))
    assert all(d.vm_state == C.VM_STATE_ACTIVE or d.fault.message for d in done)
    servers = await assert_consistent(s)
    for project, group in created.items():
        theirs = sorted(srv.id for srv in servers if srv.project_id == project)
        assert theirs == sorted(group)          # no duplicate, nothing lost
        assert len(group) == 10


async def test_the_leader_killed_during_a_boot_storm(cluster, tmp_path, qcow2_image):
    leader = cluster.leader()
    # The leader first: every process talks to it, so its loss is both a
    # failover of the connection and an election.
    endpoints = ",".join([leader.endpoint] + [m.endpoint for m in cluster.members if m is not leader])
    async with Stack(endpoints, str(tmp_path / "stack"), hosts=4, vcpus=64, memory_mb=65536) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        running = asyncio.create_task(storm(s, "ha"))
        await asyncio.sleep(0.3)
        cluster.kill(leader)
        created = await running
        assert cluster.leader() is not leader
        print(f"creates retried after the leader's loss: {len(RETRIED)}", RETRIED[:3])
        await check_storm(s, created)
        # Two members still make a quorum: a create after the storm just works.
        after = await s.api.CreateServer(C.CreateServerRequest(
            name="after", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user(project="late"))
        assert (await s.wait_settled(after.servers[0].id, timeout=60)).vm_state == C.VM_STATE_ACTIVE


class Cut:
    """A TCP relay to etcd that the test can cut (every connection dropped,
    new ones refused) and mend: a network partition of one client."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.open = True
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader, writer):
        if not self.open:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.pipes |= {writer, up_writer}

        async def pump(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        self.open = False
        for pipe in self.pipes:
            pipe.transport.abort()
        self.pipes.clear()

    async def close(self) -> None:
        self.cut()
        self.server.close()


async def test_a_watch_resuming_at_a_compacted_revision_lists_again(private_etcd):
    relay = Cut(private_etcd.client_port)
    store = await Store.connect(await relay.start(), "/compact/", timeout=1.0)
    direct = await Store.connect(private_etcd.endpoint, "/compact/")
    try:
        for i in range(5):
            await direct.txn([], [direct.put(f"w/{i}", etcd_rpc.PutRequest(key=b"v"))])
        informer = Informer(store, "w/", etcd_rpc.PutRequest)
        seen = []
        informer.add_listener(lambda kind, key, new, old: seen.append((kind, key)))
        task = asyncio.create_task(informer.run())
        await asyncio.wait_for(informer.synced.wait(), 10)
        relists = metrics.WATCH_RELISTS.labels("w/")._value.get()
        # The informer is cut off; meanwhile a key goes, one comes, and the
        # history is compacted past the informer's revision. (Compaction
        # drops the deletion's tombstone: only a list can tell it.)
        relay.cut()
        await direct.txn([], [direct.delete("w/0"), direct.put("w/new", etcd_rpc.PutRequest(key=b"n"))])
        await compact_now(direct)
        relay.open = True
        async with asyncio.timeout(30):
            while "w/new" not in informer.items or "w/0" in informer.items:
                await asyncio.sleep(0.05)
        assert metrics.WATCH_RELISTS.labels("w/")._value.get() == relists + 1
        assert (DELETED, "w/0") in seen and (UPSERT, "w/new") in seen
        assert sorted(informer.items) == ["w/1", "w/2", "w/3", "w/4", "w/new"]
        task.cancel()
    finally:
        await store.close()
        await direct.close()
        await relay.close()


async def test_compaction_and_an_etcd_restart_during_a_storm(private_etcd, tmp_path, qcow2_image):
    async with Stack(private_etcd.endpoint, str(tmp_path / "stack"), hosts=4, vcpus=64,
                     memory_mb=65536) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        before = sum(metrics.WATCH_RELISTS.labels(p)._value.get()
                     for p in (keys.INSTANCES, keys.NODES, keys.PROVIDERS))
        running = asyncio.create_task(storm(s, "cmp"))
        await asyncio.sleep(0.5)
        private_etcd.process.kill()          # every watch breaks ...
        private_etcd.process.wait()
        private_etcd.start()
        for _ in range(10):                  # ... and its revision is compacted away
            await compact_now(s.store)
            await asyncio.sleep(0.2)
        created = await running
        await check_storm(s, created)
        after = sum(metrics.WATCH_RELISTS.labels(p)._value.get()
                    for p in (keys.INSTANCES, keys.NODES, keys.PROVIDERS))
        assert after > before   # some watch did meet the compaction and listed again


async def test_nospace_is_resource_exhausted_and_recovers(private_etcd, tmp_path, qcow2_image):
    async with Stack(private_etcd.endpoint, str(tmp_path / "stack"), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        filler = etcd_rpc.PutRequest(key=b"f", value=os.urandom(512 * 1024))
        with pytest.raises(errors.ResourceExhausted) as full:
            for i in range(64):   # 8 MiB quota
                await s.store.txn([], [s.store.put(f"filler/{i}", filler)])
        assert "NOSPACE" in str(full.value)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.api.CreateServer(C.CreateServerRequest(
                name="x", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "out of space" in err.value.details() and "disarm" in err.value.details()
        listed = await s.api.ListServers(C.ListServersRequest(), metadata=user())   # reads still work
        assert list(listed.servers) == []
        # An operator's recovery: remove the junk, compact, defragment, disarm.
        await s.store.txn([], [s.store.delete("filler/", prefix=True)])
        await compact_now(s.store)
        maintenance = etcd_rpc.MaintenanceStub(s.store.client.channel)
        await maintenance.Defragment(etcd_rpc.DefragmentRequest())
        alarms = await maintenance.Alarm(etcd_rpc.AlarmRequest(action=etcd_rpc.AlarmRequest.GET))
        assert alarms.alarms   # etcd did raise it
        for alarm in alarms.alarms:   # what `etcdctl alarm disarm` does
            await maintenance.Alarm(etcd_rpc.AlarmRequest(
                action=etcd_rpc.AlarmRequest.DEACTIVATE, memberID=alarm.memberID, alarm=alarm.alarm))
        created = await s.api.CreateServer(C.CreateServerRequest(
            name="x", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())
        done = await s.wait_settled(created.servers[0].id, timeout=60)
        assert done.vm_state == C.VM_STATE_ACTIVE
        rec = await s.store.get(keys.instance(done.id), records_pb2.InstanceRecord)
        assert rec is not None
