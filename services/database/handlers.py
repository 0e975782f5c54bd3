"""DatabaseService handlers (trove-api): thin. Checks live in validation.py,
work in the task manager and the guest agent; instances are project-scoped
(another project's is NOT_FOUND), guests cannot call these RPCs."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from nimbus import errors, pagination
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import database_pb2_grpc
from nimbus.database.v1 import guest_pb2 as G
from nimbus.database.v1 import records_pb2 as R
from nimbus.rpc import auth
from nimbus.services.database import naming, quotas, status, validation, warmpool, watching
from nimbus.services.database.guests import GUEST, GuestHub, raise_for
from nimbus.verifiers import generate_password, verifier
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.services.database.datastores import resolve
from nimbus.store.store import ExtraCompareFailed, Store, now

W = D.WatchInstancesResponse


def caller() -> auth.Identity:
    who = auth.identity()
    if GUEST in who.roles:
        raise errors.PermissionDenied("guest agents cannot use DatabaseService")
    return who


def guest_users(manager: str, users) -> list[G.GuestUser]:
    return [G.GuestUser(name=u.name, host=u.host, databases=u.databases,
                        verifier=verifier(manager, u.password)) for u in users]


class DatabaseServicer(database_pb2_grpc.DatabaseServiceServicer):
    def __init__(self, store: Store, instances: Informer, compute,
                 hub: GuestHub, default_datastore: str, usage_timeout: float, backups=None):
        self.store = store
        self.instances = instances
        self.compute = compute
        self.hub = hub
        self.default_datastore = default_datastore
        self.usage_timeout = usage_timeout
        self.backups = backups

    # ---- instances ------------------------------------------------------------

    async def CreateInstance(self, request, context):
        who = caller()
        got = await validation.check_create(request, self.store, self.default_datastore,
                                            self.compute, self.backups, who)
        request = got.request
        if (not got.source and not got.restore and got.version.warm_pool_size
                and got.version.warm_pool_flavor == got.flavor.id and warmpool.eligible(request)):
            claimed = await self._claim(who, got, request)
            if claimed is not None:
                return D.CreateInstanceResponse(instance=claimed, instances=[claimed])
        count = max(1, request.replica_count) if got.source else 1
        name = request.name.strip()
        names = [f"{name}-{i + 1}" for i in range(count)] if count > 1 else [name]
        created = now()
        deadline = now()
        deadline.FromDatetime(created.ToDatetime() + timedelta(seconds=self.usage_timeout))
        records = []
        for instance_name in names:
            instance_id = str(uuid.uuid4())
            inst = D.Instance(
                id=instance_id, name=instance_name, project_id=who.project_id,
                user_id=who.user_id, task_status=D.TASK_STATUS_BUILDING,
                service_status=D.SERVICE_STATUS_NEW,
                datastore=D.DatastoreRef(type=got.datastore.name, version=got.version.name),
                flavor_ref=got.flavor.id, volume=request.volume, locality=request.locality,
                availability_zone=request.availability_zone, nics=request.nics,
                replica_of=got.source.id if got.source else "",
                created_at=created, updated_at=created)
            status.refresh(inst)
            records.append(R.InstanceRecord(
                instance=inst, stage=R.STAGE_ACCEPTED, manager=got.version.manager,
                image=got.version.image, databases=request.databases,
                users=guest_users(got.version.manager, request.users), guest_id=str(uuid.uuid4()),
                server_name=f"trove-{instance_id}", deadline=deadline,
                restore_backup_id=got.restore.backup.id if got.restore else ""))
        ids = [keys.db_instance(r.instance.id) for r in records]
        while True:
            plan = await quotas.plan(self.store, who.project_id,
                                     quotas.deltas(request.volume.size_gb, count))
            resp = await self.store.txn(
                [*(self.store.mod_is(k, 0) for k in ids), *plan.compares],
                [*(self.store.put(k, r) for k, r in zip(ids, records)), *plan.ops])
            if resp.succeeded:
                return D.CreateInstanceResponse(instance=records[0].instance,
                                                instances=[r.instance for r in records])

    async def _claim(self, who, got, request) -> D.Instance | None:
        """A ready warm-pool guest for this request, or None (the cold path)."""
        key = warmpool.pool_key(got.datastore.name, got.version.name)
        candidates = [v for k, v in self.instances.items.items() if warmpool.ready(v.msg, key)]
        random.shuffle(candidates)   # concurrent creates mostly try different guests
        users = guest_users(got.version.manager, request.users)
        for pooled in candidates:
            while pooled is not None and warmpool.ready(pooled.msg, key):
                claimed = await self._claim_one(who, pooled, request, users)
                if claimed is not None:
                    return claimed
                # Lost: to another create (the guest is gone) or on the usage (try again).
                pooled = await self.store.get(keys.db_instance(pooled.msg.instance.id), R.InstanceRecord)
        return None

    async def _claim_one(self, who, pooled, request, users) -> D.Instance | None:
        """One transaction: the pooled record (compared on its revision)
        becomes the tenant's, its guest record too, and the tenant's usage."""
        rec = warmpool.claimed_record(pooled.msg, who, request.name.strip(), request.volume,
                                      request.databases, users, self.usage_timeout)
        ikey, gkey = keys.db_instance(rec.instance.id), keys.guest(rec.guest_id)
        guest = await self.store.get(gkey, R.GuestRecord)
        if guest is None:
            return None
        guest.msg.project_id = who.project_id
        plan = await quotas.plan(self.store, who.project_id, quotas.deltas(request.volume.size_gb))
        resp = await self.store.txn(
            [self.store.mod_is(ikey, pooled.mod_revision), self.store.mod_is(gkey, guest.mod_revision),
             *plan.compares],
            [self.store.put(ikey, rec), self.store.put(gkey, guest.msg), *plan.ops])
        return rec.instance if resp.succeeded else None

    async def _get(self, instance_id: str):
        who = caller()
        got = await self.store.get(keys.db_instance(instance_id), R.InstanceRecord)
        if got is None or (got.msg.instance.project_id != who.project_id and not who.is_admin):
            raise errors.NotFound("database instance", instance_id)
        return got

    async def GetInstance(self, request, context):
        return D.GetInstanceResponse(instance=(await self._get(request.id)).msg.instance)

    def _visible(self, who: auth.Identity, all_projects: bool):
        if all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is for admins")
        return lambda rec: all_projects or rec.instance.project_id == who.project_id

    async def ListInstances(self, request, context):
        who = caller()
        visible = self._visible(who, request.all_projects)
        items, _ = await self.store.list(keys.DB_INSTANCES, R.InstanceRecord)
        page, token = pagination.page_of(
            request, [v.msg.instance for _, v in items if visible(v.msg)],
            lambda i: [i.created_at.ToNanoseconds(), i.id], who.project_id, request.all_projects)
        return D.ListInstancesResponse(instances=page, next_page_token=token)

    async def DeleteInstance(self, request, context):
        got = await self._get(request.id)
        items, _ = await self.store.list(keys.DB_INSTANCES, R.InstanceRecord)
        replicas = sorted(v.msg.instance.id for _, v in items if v.msg.instance.replica_of == request.id)
        if replicas:
            raise errors.FailedPrecondition(f"database instance {request.id} has replicas "
                                            f"({', '.join(replicas)}): detach or delete them first")

        def mutate(rec: R.InstanceRecord):
            rec.instance.task_status = D.TASK_STATUS_DELETING
            rec.instance.updated_at.CopyFrom(now())
            status.refresh(rec.instance)
        done = await self.store.update(keys.db_instance(request.id), R.InstanceRecord, mutate,
                                       current=got,
                                       not_found=errors.NotFound("database instance", request.id))
        return D.DeleteInstanceResponse(instance=done.msg.instance)

    async def WatchInstances(self, request, context):
        visible = self._visible(caller(), request.all_projects)
        async for event in watching.stream(
                self.instances,
                lambda rec: visible(rec) and (not request.id or rec.instance.id == request.id),
                W, "instance", lambda rec: rec.instance):
            yield event

    # ---- commands for the guest -------------------------------------------------

    async def _ready(self, instance_id: str) -> R.InstanceRecord:
        rec = (await self._get(instance_id)).msg
        if rec.instance.status != status.READY:
            raise errors.FailedPrecondition(
                f"database instance {instance_id} is {status.name(rec.instance.status)} "
                f"({D.TaskStatus.Name(rec.instance.task_status)}, "
                f"{D.ServiceStatus.Name(rec.instance.service_status)}), not ACTIVE")
        return rec

    async def _command(self, instance_id: str, **command) -> G.Result:
        rec = await self._ready(instance_id)
        result = await self.hub.call(rec.guest_id, **command)
        raise_for(result)
        return result

    async def RestartInstance(self, request, context):
        await self._command(request.id, restart=G.Restart())
        return D.RestartInstanceResponse(instance=(await self._get(request.id)).msg.instance)

    async def ListDatabases(self, request, context):
        pagination.check(request, request.instance_id)
        result = await self._command(request.instance_id, list_databases=G.ListRequest())
        page, token = pagination.page_of(request, result.databases, lambda d: [d.name],
                                         request.instance_id)
        return D.ListDatabasesResponse(databases=page, next_page_token=token)

    async def CreateDatabase(self, request, context):
        rec = await self._ready(request.instance_id)
        if not request.databases:
            raise errors.InvalidArgument("databases", "at least one database is required")
        validation.check_schema(rec.manager, request.databases, [])
        raise_for(await self.hub.call(rec.guest_id, create_databases=G.DatabasesChange(
            databases=request.databases)))
        return D.CreateDatabaseResponse()

    async def DeleteDatabase(self, request, context):
        rec = await self._ready(request.instance_id)
        problem = naming.database_problem(rec.manager, request.name)
        if problem:
            raise errors.InvalidArgument("name", problem)
        raise_for(await self.hub.call(rec.guest_id, delete_database=G.NameRef(name=request.name)))
        return D.DeleteDatabaseResponse()

    async def ListUsers(self, request, context):
        pagination.check(request, request.instance_id)
        result = await self._command(request.instance_id, list_users=G.ListRequest())
        page, token = pagination.page_of(request, result.users, lambda u: [u.name, u.host],
                                         request.instance_id)
        return D.ListUsersResponse(users=page, next_page_token=token)

    async def CreateUser(self, request, context):
        rec = await self._ready(request.instance_id)
        if not request.users:
            raise errors.InvalidArgument("users", "at least one user is required")
        validation.check_schema(rec.manager, [], request.users)
        raise_for(await self.hub.call(rec.guest_id, create_users=G.UsersChange(
            users=guest_users(rec.manager, request.users))))
        return D.CreateUserResponse()

    def _check_user(self, rec: R.InstanceRecord, name: str, host: str, field: str = "name") -> None:
        problem = naming.user_problem(rec.manager, name, host)
        if problem:
            raise errors.InvalidArgument(field, problem)

    async def DeleteUser(self, request, context):
        rec = await self._ready(request.instance_id)
        self._check_user(rec, request.name, request.host)
        raise_for(await self.hub.call(rec.guest_id, delete_user=G.NameRef(
            name=request.name, host=request.host)))
        return D.DeleteUserResponse()

    async def GrantAccess(self, request, context):
        rec = await self._ready(request.instance_id)
        self._check_user(rec, request.user, request.host, "user")
        if not request.databases:
            raise errors.InvalidArgument("databases", "at least one database is required")
        raise_for(await self.hub.call(rec.guest_id, grant_access=G.Access(
            user=request.user, host=request.host, databases=request.databases)))
        return D.GrantAccessResponse()

    async def RevokeAccess(self, request, context):
        rec = await self._ready(request.instance_id)
        self._check_user(rec, request.user, request.host, "user")
        if not request.database:
            raise errors.InvalidArgument("database", "a database is required")
        raise_for(await self.hub.call(rec.guest_id, revoke_access=G.Access(
            user=request.user, host=request.host, databases=[request.database])))
        return D.RevokeAccessResponse()

    async def EnableRoot(self, request, context):
        rec = await self._ready(request.instance_id)
        password = generate_password()
        name = naming.ROOT_USERS[rec.manager]
        raise_for(await self.hub.call(rec.guest_id, enable_root=G.GuestUser(
            name=name, host="%", verifier=verifier(rec.manager, password))))

        def mutate(r: R.InstanceRecord):
            r.instance.root_enabled = True
        await self.store.update(keys.db_instance(request.instance_id), R.InstanceRecord, mutate)
        return D.EnableRootResponse(name=name, password=password)

    async def DetachReplica(self, request, context):
        rec = await self._ready(request.id)
        if not rec.instance.replica_of:
            raise errors.FailedPrecondition(f"database instance {request.id} is not a replica")
        raise_for(await self.hub.call(rec.guest_id, promote=G.Promote()))

        def mutate(r: R.InstanceRecord):
            r.instance.replica_of = ""
            r.instance.updated_at.CopyFrom(now())
        done = await self.store.update(keys.db_instance(request.id), R.InstanceRecord, mutate)
        return D.DetachReplicaResponse(instance=done.msg.instance)

    async def ResizeVolume(self, request, context):
        rec = await self._ready(request.id)
        inst = rec.instance
        if request.size_gb <= inst.volume.size_gb:
            raise errors.InvalidArgument("size_gb", f"volumes only grow: larger than the current "
                                         f"{inst.volume.size_gb} GB")
        _, version = await resolve(self.store, inst.datastore.type, inst.datastore.version, "")
        if request.size_gb > version.max_accepted_volume_size:
            raise errors.InvalidArgument("size_gb", f"volume size {request.size_gb} GB exceeds the "
                                         f"maximum accepted {version.max_accepted_volume_size} GB")

        async def plan():
            return await quotas.plan(self.store, inst.project_id,
                                     {"volumes": request.size_gb - inst.volume.size_gb})
        fragment = await plan()

        def mutate(r: R.InstanceRecord):
            if r.instance.volume.size_gb != inst.volume.size_gb:
                raise errors.FailedPrecondition(f"database instance {inst.id} was resized meanwhile")
            r.instance.volume.size_gb = request.size_gb
            r.instance.updated_at.CopyFrom(now())
            return fragment.compares, fragment.ops
        while True:
            try:
                done = await self.store.update(keys.db_instance(inst.id), R.InstanceRecord, mutate)
                return D.ResizeVolumeResponse(instance=done.msg.instance)
            except ExtraCompareFailed:
                fragment = await plan()   # the usage moved: plan again

    async def ResizeInstance(self, request, context):
        rec = await self._ready(request.id)
        inst = rec.instance
        _, version = await resolve(self.store, inst.datastore.type, inst.datastore.version, "")
        flavor = await validation.check_flavor(self.compute, request.flavor_ref, version,
                                              inst.datastore.type)
        if flavor.id == inst.flavor_ref:
            raise errors.InvalidArgument("flavor_ref", f"the instance already has flavor {flavor.name}")

        def mutate(r: R.InstanceRecord):
            if r.instance.task_status != D.TASK_STATUS_NONE:
                raise errors.FailedPrecondition(f"database instance {inst.id} is busy "
                                                f"({D.TaskStatus.Name(r.instance.task_status)})")
            r.instance.task_status = D.TASK_STATUS_RESIZING
            r.resize_flavor_ref = flavor.id
            r.instance.updated_at.CopyFrom(now())
            status.refresh(r.instance)
        done = await self.store.update(keys.db_instance(inst.id), R.InstanceRecord, mutate)
        return D.ResizeInstanceResponse(instance=done.msg.instance)

    async def IsRootEnabled(self, request, context):
        rec = (await self._get(request.instance_id)).msg
        return D.IsRootEnabledResponse(root_enabled=rec.instance.root_enabled)
