"""The warm pool with real PostgreSQL: prepared guests are claimed by
matching creates, each by one create only, under 10 concurrent creates;
the creates the pool cannot serve take the cold path; the pool refills,
one guest at a time, also after the leader went away mid-refill; a claimed
guest holds only its own tenant's databases; nothing is left once the pool
shrinks to nothing."""

import asyncio
import os
from datetime import timedelta
from types import SimpleNamespace

from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import quotas_pb2 as Q
from nimbus.compute.v1 import quotas_pb2_grpc
from nimbus.database.v1 import database_pb2 as D
from nimbus.rpc.server import channel
from nimbus.database.v1 import datastores_pb2 as S
from stack import ADMIN, user
from test_database_flow import create_request
from dbstack import CLIENTS, datastore_processes
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database import warmpool
from nimbus.store.store import now

POOL = 2
ALICE = user("alice", "demo")


async def pooled(dbstack) -> set[str]:
    listed = await dbstack.db.ListInstances(D.ListInstancesRequest(all_projects=True), metadata=ADMIN)
    return {i.id for i in listed.instances if i.project_id == "warm-pool"
            and i.status == D.INSTANCE_STATUS_ACTIVE}


async def members(dbstack) -> list[D.Instance]:
    listed = await dbstack.db.ListInstances(D.ListInstancesRequest(all_projects=True), metadata=ADMIN)
    return [i for i in listed.instances if i.project_id == "warm-pool"]


async def until_pooled(dbstack, n: int, timeout: float = 120, exactly: bool = False) -> set[str]:
    """n ready pooled guests (exactly: and no other pool record, building or going)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(ready := await pooled(dbstack)) != n or (exactly and len(await members(dbstack)) != n):
        assert loop.time() < deadline, f"{len(ready)} pooled guests, not {n}"
        await asyncio.sleep(0.2)
    return ready


class BuildingAtOnce:
    """The most pooled guests seen building at once, from WatchInstances."""

    def __init__(self, dbstack):
        self.seen: dict[str, D.Instance] = {}
        self.most = 0
        self.call = dbstack.db.WatchInstances(D.WatchInstancesRequest(all_projects=True), metadata=ADMIN)
        self.task = asyncio.create_task(self._follow())

    async def _follow(self):
        async for ev in self.call:
            if ev.type == D.WatchInstancesResponse.EVENT_TYPE_DELETED:
                self.seen.pop(ev.instance.id, None)
            elif ev.instance.id:
                self.seen[ev.instance.id] = ev.instance
            self.most = max(self.most, sum(1 for i in self.seen.values() if i.project_id == "warm-pool"
                                           and i.status == D.INSTANCE_STATUS_BUILD))

    def stop(self):
        self.call.cancel()
        self.task.cancel()


async def assert_nothing_left(dbstack):
    while (await dbstack.db.ListInstances(D.ListInstancesRequest(all_projects=True), metadata=ADMIN)).instances:
        await asyncio.sleep(0.2)
    assert os.listdir(dbstack.guest_dir) == []   # no guest's directory, data or config drive
    assert not datastore_processes(dbstack.guest_dir)   # no agent, no server


async def set_pool(dbstack, size: int, flavor: str):
    await dbstack.datastores.PutVersion(S.PutVersionRequest(datastore="postgresql", version=S.DatastoreVersion(
        name="15", manager="postgresql", image="cirros", active=True, volume_support=True,
        max_accepted_volume_size=10, warm_pool_size=size, warm_pool_flavor=flavor)), metadata=ADMIN)


async def test_ten_concurrent_creates_claim_each_pooled_guest_once_and_the_rest_go_cold(dbstack):
    # Every database server is the service project's: room for 10 creates, the pool and its refill.
    async with channel(dbstack.stack.cfg.api_address) as ch:
        await quotas_pb2_grpc.QuotaServiceStub(ch).UpdateQuotas(Q.UpdateQuotasRequest(
            project_id="service", quota_set=Q.QuotaSet(instances=-1, cores=-1, ram=-1)), metadata=ADMIN)
    flavor = (await dbstack.api.GetFlavor(C.GetFlavorRequest(ref="m1.tiny"), metadata=ADMIN)).flavor
    building = BuildingAtOnce(dbstack)
    await set_pool(dbstack, POOL, flavor.id)
    before = await until_pooled(dbstack, POOL)

    tenants = [user(f"u{i}", f"tenant{i}") for i in range(10)]
    made = await asyncio.gather(*(dbstack.db.CreateInstance(create_request(name=f"db{i}", users=[
        D.UserSpec(name="app", password=f"pass-{i}-word", databases=["app"])]), metadata=who)
        for i, who in enumerate(tenants)))
    ids = [m.instance.id for m in made]
    assert len(set(ids)) == 10
    claimed = set(ids) & before
    assert claimed == before   # both pooled guests were taken, each by exactly one create
    for i, inst_id in enumerate(ids):
        done = await dbstack.wait_settled(inst_id, timeout=180)
        assert done.status == D.INSTANCE_STATUS_ACTIVE, done.fault
        assert done.project_id == f"tenant{i}"
        ok = CLIENTS["postgresql"](done, "app", f"pass-{i}-word", "app")
        assert ok.returncode == 0, ok.stderr
        dbs = await dbstack.db.ListDatabases(D.ListDatabasesRequest(instance_id=inst_id), metadata=tenants[i])
        assert [d.name for d in dbs.databases] == ["app"]   # nobody else's data
    refilled = await until_pooled(dbstack, POOL, timeout=180, exactly=True)
    assert not refilled & set(ids)   # new guests; a claimed one never returns to the pool
    building.stop()
    assert building.most == warmpool.BUILDING_AT_ONCE   # filled and refilled one guest at a time

    await set_pool(dbstack, 0, "")
    await until_pooled(dbstack, 0, exactly=True)
    for i, inst_id in enumerate(ids):
        await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=inst_id), metadata=tenants[i])
    for inst_id in ids:
        assert await dbstack.wait_for(inst_id, lambda x: x is None, timeout=120) is None
    await assert_nothing_left(dbstack)


async def test_a_leader_gone_mid_refill_is_followed_by_one_that_finishes_it(dbstack):
    async with channel(dbstack.stack.cfg.api_address) as ch:
        await quotas_pb2_grpc.QuotaServiceStub(ch).UpdateQuotas(Q.UpdateQuotasRequest(
            project_id="service", quota_set=Q.QuotaSet(instances=-1, cores=-1, ram=-1)), metadata=ADMIN)
    flavor = (await dbstack.api.GetFlavor(C.GetFlavorRequest(ref="m1.tiny"), metadata=ADMIN)).flavor
    await set_pool(dbstack, POOL, flavor.id)
    while not any(i.status == D.INSTANCE_STATUS_BUILD for i in await members(dbstack)):
        await asyncio.sleep(0.05)
    await dbstack.database.stop()   # the leader goes away with a pooled guest building
    await dbstack.start_database()
    # The new leader counts the guest the old one started (its records, listed
    # and watched): the pool ends at its size, not above it.
    ready = await until_pooled(dbstack, POOL, timeout=180, exactly=True)
    claimed = (await dbstack.db.CreateInstance(create_request(name="db"), metadata=ALICE)).instance
    assert claimed.id in ready
    done = await dbstack.wait_settled(claimed.id, timeout=120)
    assert done.status == D.INSTANCE_STATUS_ACTIVE, done.fault
    await until_pooled(dbstack, POOL, timeout=180, exactly=True)
    await set_pool(dbstack, 0, "")
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=claimed.id), metadata=ALICE)
    await assert_nothing_left(dbstack)


def test_a_claim_gets_a_build_deadline_of_its_own():
    """A guest that waited in the pool longer than usage_timeout is past the
    deadline of its own build: its claim must not fail at once for that."""
    long_ago = now()
    long_ago.FromDatetime(now().ToDatetime() - timedelta(hours=2))
    pooled_rec = R.InstanceRecord(instance=D.Instance(id="x", project_id="warm-pool"), deadline=long_ago,
                                  stage=R.STAGE_DONE, pool="postgresql/15")
    alice = SimpleNamespace(project_id="demo", user_id="alice")
    rec = warmpool.claimed_record(pooled_rec, alice, "db", D.VolumeSpec(size_gb=1), [], [], 60)
    left = rec.deadline.ToNanoseconds() / 1e9 - now().ToNanoseconds() / 1e9
    assert 50 < left <= 60 and rec.stage == R.STAGE_CLAIMED and not rec.pool
