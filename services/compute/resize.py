"""Resize, cold migration, confirm and revert (Nova's compute/api.py
resize, migrate, confirm_resize, revert_resize) and the migration lists.

Starting a move is ONE transaction: the instance (RESIZE_PREP, its
migration context and action), the migration record (pre-migrating), the
instance action, the upsize quota delta (cores, RAM) and the source
allocation handed from the instance to the migration. The conductor then
claims a destination; the hosts do the rest (nimbus.states)."""

from __future__ import annotations

import uuid

from nimbus import errors, migrations, pagination, quota, states
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2, migrations_pb2, migrations_pb2_grpc
from nimbus.rpc import auth, interceptor
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store, Versioned

C = compute_pb2
R = records_pb2
ATTEMPTS = 5


def _action(store: Store, rec: R.InstanceRecord, name: str, who: auth.Identity) -> tuple:
    """The instance action of a new request: (its key, compares, ops)."""
    try:
        request_id = interceptor.request_id()
    except LookupError:   # not in a call: the conductor's auto-confirm
        request_id = ""
    request_id = request_id or f"req-{uuid.uuid4()}"
    rec.request_id = request_id
    akey = keys.action(rec.server.id, request_id)
    record = R.InstanceAction(request_id=request_id, instance_id=rec.server.id, action=name,
                              project_id=who.project_id, user_id=who.user_id, start_time=now())
    return [store.mod_is(akey, 0)], [store.put(akey, record)]


def _set_task(rec: R.InstanceRecord, task_state: int) -> None:
    stamp = now()
    rec.server.task_state = task_state
    rec.server.updated_at.CopyFrom(stamp)
    rec.task_changed_at.CopyFrom(stamp)


async def begin_confirm_or_revert(store: Store, found: Versioned, action: str,
                                  who: auth.Identity) -> Versioned:
    """RESIZED -> RESIZE_CONFIRMING (migration confirming) or
    RESIZE_REVERTING (reverting), compared on both records: of a user's
    confirm and the auto-confirm exactly one wins."""
    status = {"confirm_resize": "confirming", "revert_resize": "reverting"}[action]
    for _ in range(ATTEMPTS):
        rec = R.InstanceRecord()
        rec.CopyFrom(found.msg)
        states.check(action, rec.server)
        ctx = migrations.context_of(rec)
        mig = await migrations.get(store, ctx.migration_id) if ctx else None
        if mig is None or mig.msg.migration.status != "finished":
            raise errors.FailedPrecondition(
                f"server {rec.server.id} has no finished migration to "
                f"{'confirm' if action == 'confirm_resize' else 'revert'}")
        _set_task(rec, states.ACTIONS[action].sets)
        frag, _ = migrations.with_status(store, mig, status)
        frag.add(*_action(store, rec, states.ACTION_NAMES[action], who))
        ikey = keys.instance(rec.server.id)
        resp = await store.txn([store.mod_is(ikey, found.mod_revision), *frag.compares],
                               [store.put(ikey, rec), *frag.ops])
        if resp.succeeded:
            return Versioned(rec, resp.header.revision)
        found = await store.get(ikey, R.InstanceRecord)
        if found is None:
            raise errors.NotFound("server", rec.server.id)
    raise errors.Unavailable("too many concurrent changes to this server; retry")


class ResizeActions:
    """Mixed into ComputeServicer (store, catalog, _server, view)."""

    async def ResizeServer(self, request, context):
        who = auth.identity()
        flavor = await self.catalog.flavor(request.flavor_ref, "flavor_ref", who)
        server, migration = await self._begin_move(request.id, who, "resize", flavor)
        return C.ResizeServerResponse(server=self.view(server, who), migration=migration)

    async def MigrateServer(self, request, context):
        who = auth.require_admin()
        if request.host and await self.store.get(keys.node(request.host), R.NodeRecord) is None:
            raise errors.NotFound("host", request.host)
        server, migration = await self._begin_move(request.id, who, "migrate", None, request.host)
        return C.MigrateServerResponse(server=self.view(server, who), migration=migration)

    async def _begin_move(self, server_id: str, who: auth.Identity, action: str,
                          flavor: C.Flavor | None, host: str = ""):
        found = await self._server(server_id, who)
        # One quota change per project at a time here (as deletes do): the
        # usage compare keeps it correct, the lock spares a storm of resizes
        # lost races on the usage key.
        async with self.quota_locks[found.msg.server.project_id]:
            return await self._begin_move_locked(found, server_id, who, action, flavor, host)

    async def _begin_move_locked(self, found, server_id: str, who: auth.Identity, action: str,
                                 flavor: C.Flavor | None, host: str):
        for _ in range(ATTEMPTS):
            rec = R.InstanceRecord()
            rec.CopyFrom(found.msg)
            server = rec.server
            states.check(action, server)
            if rec.volumes:
                # The move rebuilds the domain from the local disks only.
                raise errors.FailedPrecondition(
                    f"server {server_id} has {len(rec.volumes)} volume(s) attached: a {action} of "
                    "a server with volumes is not supported yet; detach them first")
            if not server.host:
                raise errors.FailedPrecondition(f"server {server_id} has no host: it never ran")
            old, new = server.flavor, flavor or server.flavor
            if action == "resize" and new.id == old.id:
                raise errors.InvalidArgument("flavor_ref", "is the server's current flavor")
            if new.disk_gb < old.disk_gb:
                raise errors.InvalidArgument(
                    "flavor_ref", f"has a smaller root disk ({new.disk_gb} GB) than the server's "
                                  f"({old.disk_gb} GB): disks are never shrunk")
            if host and host == server.host:
                raise errors.InvalidArgument("host", "is the server's current host")
            up = (max(0, new.vcpus - old.vcpus), max(0, new.ram_mb - old.ram_mb))
            down = (max(0, old.vcpus - new.vcpus), max(0, old.ram_mb - new.ram_mb))
            migration_id = str(uuid.uuid4())
            # The source's allocation is the migration's while the server
            # moves. It and the quota records are read in one round trip.
            handed = {(server.host, server_id): None, (server.host, migration_id): None}
            wanted = migrations.allocation_keys(handed)
            if any(up):
                wanted.update(quota.snapshot_keys(server.project_id))
            got = await self.store.get_many(wanted)
            frag = await migrations.quota_fragment(self.store, server.project_id, *up, known=got)
            stamp = now()
            migration = C.Migration(
                id=migration_id, server_id=server_id, project_id=server.project_id,
                source_host=server.host, old_flavor_id=old.id, new_flavor_id=new.id,
                status="pre-migrating", migration_type="resize" if action == "resize" else "migration",
                created_at=stamp, updated_at=stamp)
            rec.migration_context.CopyFrom(R.MigrationContext(
                migration_id=migration_id, source_host=server.host, old_flavor=old, new_flavor=new,
                old_vm_state=server.vm_state, upsize_vcpus=up[0], upsize_ram_mb=up[1],
                downsize_vcpus=down[0], downsize_ram_mb=down[1], requested_host=host))
            _set_task(rec, states.ACTIONS[action].sets)
            frag.add(*_action(self.store, rec, action, who))
            source = got[keys.allocation(server.host, server_id)]
            if source is not None:
                handed[(server.host, migration_id)] = source.msg.resources
                frag.add(*(await migrations.allocations(
                    self.store, handed, project_id=server.project_id, known=got)).astuple())
            mkey, ikey = keys.migration(migration_id), keys.instance(server_id)
            resp = await self.store.txn(
                [self.store.mod_is(ikey, found.mod_revision), self.store.mod_is(mkey, 0),
                 *frag.compares],
                [self.store.put(ikey, rec), self.store.put(mkey, R.MigrationRecord(
                    migration=migration)), *frag.ops])
            if resp.succeeded:
                return rec.server, migration
            found = await self._server(server_id, who)
        raise errors.Unavailable("too many concurrent changes to this server; retry")

    async def ConfirmServerResize(self, request, context):
        who = auth.identity()
        found = await self._server(request.id, who)
        updated = await begin_confirm_or_revert(self.store, found, "confirm_resize", who)
        return C.ConfirmServerResizeResponse(server=self.view(updated.msg.server, who))

    async def RevertServerResize(self, request, context):
        who = auth.identity()
        found = await self._server(request.id, who)
        updated = await begin_confirm_or_revert(self.store, found, "revert_resize", who)
        return C.RevertServerResizeResponse(server=self.view(updated.msg.server, who))

    async def ListServerMigrations(self, request, context):
        who = auth.identity()
        await self._server(request.id, who)
        found = await list_migrations(self.store, server_id=request.id)
        page, token = pagination.page_of(
            request, found, lambda m: [m.created_at.ToNanoseconds(), m.id], request.id)
        return C.ListServerMigrationsResponse(migrations=page, next_page_token=token)


async def list_migrations(store: Store, host: str = "", status: str = "",
                          server_id: str = "") -> list[C.Migration]:
    items, _ = await store.list(keys.MIGRATIONS, R.MigrationRecord)
    out = [v.msg.migration for _, v in items]
    out = [m for m in out if (not host or host in (m.source_host, m.dest_host))
           and (not status or m.status == status) and (not server_id or m.server_id == server_id)]
    return sorted(out, key=lambda m: (m.created_at.seconds, m.created_at.nanos, m.id))


class MigrationServicer(migrations_pb2_grpc.MigrationServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def ListMigrations(self, request, context):
        auth.require_admin()
        found = await list_migrations(self.store, request.host, request.status, request.server_id)
        page, token = pagination.page_of(
            request, found, lambda m: [m.created_at.ToNanoseconds(), m.id],
            request.host, request.status, request.server_id)
        return migrations_pb2.ListMigrationsResponse(migrations=page, next_page_token=token)
