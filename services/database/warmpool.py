"""Warm pools: per datastore version, `warm_pool_size` guests built ahead
(server, guest, datastore initialised, started and secured, no databases
or users) in the project `warm-pool`, so a matching create claims one and
only has its databases and users to make.

    refill   the leader keeps, per version, as many pooled records (pool set)
             as the version asks for, creating ordinary BUILDING records
             the task manager builds like any other; extra or failed ones
             are deleted. It builds one guest of a version at a time, and
             none while a claim (of any version) is preparing: the claims
             are what users wait for, and the builds started at the same
             moment (initialise, start) took the CPU they needed, on the
             same host (bench/README.md "Warm pool"; holding back only the
             claim's own version left the other's builds in the way).
             Claims only come from pools, so the hold ends when they are
             empty at the latest. Both rules read only the records: a new
             leader applies them from its list + watch
    claim    CreateInstance, for a request with nothing a pooled guest
             cannot have (restore point, replica, locality, zone, nics) on
             the pool's flavor, rewrites one ACTIVE pooled record as the
             tenant's instance (task BUILDING, stage CLAIMED, pool cleared)
             in ONE transaction with the tenant's quota usage, compared on
             the pooled record's mod_revision: two creates never get the
             same guest; a lost race tries the next, an empty pool is the
             cold path
    claimed  the task manager sends the databases and users (an idempotent
             prepare) and ends the build

A claimed guest never goes back to the pool, so no pooled guest ever held
a tenant's data."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from nimbus import log
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import datastores_pb2 as S
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database import status
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store, now

_log = log.get("nimbus.database.warmpool")
PROJECT = "warm-pool"
# Guests of one version built at once: on a CPU-bound host one at a time
# also gives the first ready guest soonest.
BUILDING_AT_ONCE = 1
# A claim prepares in about a second; one older than this (its guest does
# not answer) no longer holds the refill back.
CLAIM_HOLD_S = 10.0


def pool_key(datastore: str, version: str) -> str:
    return f"{datastore}/{version}"


def eligible(req: D.CreateInstanceRequest) -> bool:
    return not (req.HasField("restore_point") or req.replica_of or req.locality
                or req.availability_zone or req.nics)


def ready(rec: R.InstanceRecord, key: str) -> bool:
    inst = rec.instance
    return (rec.pool == key and rec.stage == R.STAGE_DONE and inst.task_status == D.TASK_STATUS_NONE
            and inst.service_status == D.SERVICE_STATUS_HEALTHY)


def preparing_claim(rec: R.InstanceRecord, at: float) -> bool:
    """A claim still making its databases and users, claimed less than
    CLAIM_HOLD_S before `at` (now, in seconds)."""
    inst = rec.instance
    return (rec.stage == R.STAGE_CLAIMED and inst.task_status == D.TASK_STATUS_BUILDING
            and at - inst.created_at.ToNanoseconds() / 1e9 < CLAIM_HOLD_S)


def claimed_record(pooled: R.InstanceRecord, who, name: str, volume: D.VolumeSpec,
                   databases, users, usage_timeout: float) -> R.InstanceRecord:
    rec = R.InstanceRecord()
    rec.CopyFrom(pooled)
    inst = rec.instance
    created = now()
    # The pooled guest's deadline was for its own build, long past for a guest
    # that waited in the pool: the claim gets a build deadline of its own.
    rec.deadline.FromDatetime(created.ToDatetime() + timedelta(seconds=usage_timeout))
    inst.name, inst.project_id, inst.user_id = name, who.project_id, who.user_id
    inst.volume.CopyFrom(volume)
    inst.task_status = D.TASK_STATUS_BUILDING
    inst.created_at.CopyFrom(created)
    inst.updated_at.CopyFrom(created)
    status.refresh(inst)
    rec.stage, rec.pool = R.STAGE_CLAIMED, ""
    del rec.databases[:]
    rec.databases.extend(databases)
    del rec.users[:]
    rec.users.extend(users)
    return rec


class WarmPools:
    """The refill loop (leader only)."""

    def __init__(self, store: Store, instances: Informer, usage_timeout: float):
        self.store = store
        self.instances = instances
        self.usage_timeout = usage_timeout
        self.changed = asyncio.Event()
        self.added: dict[str, set[str]] = {}   # created, maybe not yet in the informer

    def _on_change(self, kind, key, new, old) -> None:
        # Pool members, and claims (the end of one may let the pools refill).
        if any(v is not None and (v.msg.pool or v.msg.stage == R.STAGE_CLAIMED) for v in (new, old)):
            self.changed.set()

    async def lead(self) -> None:
        await self.instances.synced.wait()
        self.instances.add_listener(self._on_change)
        try:
            while True:
                try:
                    await self.refill()
                except Exception as exc:  # noqa: BLE001 - tried again on the next round
                    _log.warning("warm pool refill failed", error=str(exc))
                try:
                    await asyncio.wait_for(self.changed.wait(), 2.0)
                except asyncio.TimeoutError:
                    pass
                self.changed.clear()
        finally:
            self.instances.remove_listener(self._on_change)

    async def refill(self) -> None:
        datastores, _ = await self.store.list(keys.DB_DATASTORES, S.Datastore)
        wanted = {pool_key(ds.msg.name, v.name): (ds.msg, v) for _, ds in datastores
                  for v in ds.msg.versions}
        members: dict[str, list[R.InstanceRecord]] = {}
        records = [v.msg for v in list(self.instances.items.values())]
        for rec in records:
            if rec.pool and rec.instance.task_status != D.TASK_STATUS_DELETING:
                members.setdefault(rec.pool, []).append(rec)
        at = now().ToNanoseconds() / 1e9
        claiming = any(preparing_claim(r, at) for r in records)
        for key in set(wanted) | set(members):
            ds, version = wanted.get(key, (None, None))
            size = version.warm_pool_size if version and version.active else 0
            have = members.get(key, [])
            broken = [r for r in have if status.FAILED_TASKS & {r.instance.task_status}
                      or r.instance.status in (D.INSTANCE_STATUS_ERROR, D.INSTANCE_STATUS_FAILED,
                                               D.INSTANCE_STATUS_SHUTDOWN)]
            healthy = [r for r in have if r not in broken]
            unseen = {i for i in self.added.get(key, set())
                      if keys.db_instance(i) not in self.instances.items}
            self.added[key] = unseen
            healthy += [None] * len(unseen)
            # The building ones go first when the pool shrinks.
            healthy.sort(key=lambda r: r is not None and ready(r, key), reverse=True)
            extra = healthy[size:] if len(healthy) > size else []
            for rec in broken + [r for r in extra if r is not None]:
                await self._delete(rec.instance.id)
            building = sum(1 for r in healthy[:size] if r is None or not ready(r, key))
            if claiming:
                continue
            for _ in range(min(size - len(healthy), BUILDING_AT_ONCE - building)):
                self.added.setdefault(key, set()).add(await self._add(ds, version, key))

    async def _delete(self, instance_id: str) -> None:
        def mutate(rec: R.InstanceRecord):
            if rec.pool:   # not claimed meanwhile
                rec.instance.task_status = D.TASK_STATUS_DELETING
                status.refresh(rec.instance)
        await self.store.update(keys.db_instance(instance_id), R.InstanceRecord, mutate)

    async def _add(self, ds: S.Datastore, version: S.DatastoreVersion, key: str) -> str:
        instance_id = str(uuid.uuid4())
        created = now()
        deadline = now()
        deadline.FromDatetime(created.ToDatetime() + timedelta(seconds=self.usage_timeout))
        inst = D.Instance(id=instance_id, name=f"warm-{ds.name}-{version.name}-{instance_id[:8]}",
                          project_id=PROJECT, task_status=D.TASK_STATUS_BUILDING,
                          service_status=D.SERVICE_STATUS_NEW,
                          datastore=D.DatastoreRef(type=ds.name, version=version.name),
                          flavor_ref=version.warm_pool_flavor,
                          volume=D.VolumeSpec(size_gb=1 if version.volume_support else 0),
                          created_at=created, updated_at=created)
        status.refresh(inst)
        await self.store.create(keys.db_instance(instance_id), R.InstanceRecord(
            instance=inst, stage=R.STAGE_ACCEPTED, manager=version.manager, image=version.image,
            guest_id=str(uuid.uuid4()), server_name=f"trove-{instance_id}", deadline=deadline,
            pool=key))
        _log.info("warm pool guest added", pool=key, instance_id=instance_id)
        return instance_id
