"""The leader's migration controller, and AdvanceMigration (Nova's
conductor migrate_server + the compute manager's prep_resize,
resize_instance, finish_resize, confirm_resize, revert_resize and
finish_revert_resize, as the records they change).

- place: a server in RESIZE_PREP without a destination gets one: the
  scheduler picks (not the source unless allow_resize_to_same_host), and
  the claim on the destination (held by the instance) joins the instance's
  and the migration's change in one transaction; a host without room tries
  the next, up to max_attempts; no host at all puts everything back as it
  was (allocation, quota, task) with the migration in `error` and an Error
  event: a server that was fine never goes to ERROR for it.
- auto-confirm: a RESIZED server whose migration finished more than
  resize_confirm_window seconds ago is confirmed, by the same compare-and-
  swap as a user's confirm (exactly one wins).
- advance: a host's step done moves the server, the migration record, the
  allocations and the quota on together."""

from __future__ import annotations

import asyncio
import time

from nimbus import crashpoints, errors, log, metrics, migrations, quota, resources, states
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2
from nimbus.conductor.v1 import conductor_pb2
from nimbus.rpc import auth
from nimbus.scheduler.v1 import scheduler_pb2
from nimbus.services.compute.resize import begin_confirm_or_revert
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import UPSERT
from nimbus.store.store import Versioned

_log = log.get("nimbus.conductor")
C = compute_pb2
R = records_pb2
NONE = C.TASK_STATE_UNSPECIFIED
PLACING_AT_ONCE = 16      # moves placed concurrently (scheduler calls and claims in flight)
CLAIM_RACES = 5           # lost races on one host's usage before trying the next host
# Who the auto-confirm acts as, in the instance action it records.
SYSTEM = auth.Identity(user_id="nimbus-conductor", project_id="", roles=frozenset({auth.SERVICE}))


CLAIMED, NO_ROOM, LOST_RACE = "claimed", "no room", "lost race"


def needs_destination(rec: R.InstanceRecord) -> bool:
    ctx = migrations.context_of(rec)
    return (rec.server.task_state == C.TASK_STATE_RESIZE_PREP and ctx is not None
            and not ctx.dest_host)


class MigrationController:
    def __init__(self, conductor, scheduler_stub, metadata, allow_same_host: bool = False,
                 confirm_window: float = 0.0, sweep_interval: float = 2.0):
        self.c = conductor
        self.scheduler = scheduler_stub
        self.metadata = metadata
        self.allow_same_host = allow_same_host
        self.confirm_window = confirm_window
        self.sweep_interval = sweep_interval
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.metrics = metrics.ControllerMetrics("moves", lambda: len(self.pending))
        # The build scheduler's view of which hosts are down (set by main).
        self.host_down = lambda host, clock: False

    def _on_instance(self, kind, key, new, old) -> None:
        if kind == UPSERT and needs_destination(new.msg):
            self.pending.add(new.msg.server.id)
            self.wake.set()

    async def lead(self) -> None:
        await self.c.instances.synced.wait()
        self.c.instances.add_listener(self._on_instance)
        sweeper = asyncio.create_task(self._sweep_forever())
        self.metrics.start()
        try:
            self.pending.update(v.msg.server.id for v in self.c.instances.items.values()
                                if needs_destination(v.msg))
            self.wake.set()
            while True:
                await self.wake.wait()
                self.wake.clear()
                batch, self.pending = self.pending, set()
                slots = asyncio.Semaphore(PLACING_AT_ONCE)

                async def place(instance_id: str) -> None:
                    async with slots:
                        try:
                            await self.place(instance_id)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:  # noqa: BLE001 - keep it pending, try again
                            _log.warning("placing a move failed, retrying",
                                         instance_id=instance_id, error=str(exc))
                            self.metrics.retried()
                            self.pending.add(instance_id)
                await asyncio.gather(*(place(i) for i in batch))
                if self.pending:
                    await asyncio.sleep(0.5)
                    self.wake.set()
        finally:
            self.metrics.stop()
            self.c.instances.remove_listener(self._on_instance)
            sweeper.cancel()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep looks again
                _log.warning("migration sweep failed", error=str(exc))

    async def sweep(self) -> None:
        stale = time.time() - 2 * self.sweep_interval
        clock = time.monotonic()
        for v in list(self.c.instances.items.values()):
            ctx = migrations.context_of(v.msg)
            task = v.msg.server.task_state
            down = [h for h in (ctx.source_host, ctx.dest_host) if h and self.host_down(h, clock)
                    ] if ctx is not None and task in states.RESIZE_TASKS else []
            if down:
                await self._fail_move(v, down[0])
                continue
            if needs_destination(v.msg) and v.msg.task_changed_at.seconds < stale:
                self.pending.add(v.msg.server.id)
                self.wake.set()
            elif (self.confirm_window > 0 and v.msg.server.vm_state == C.VM_STATE_RESIZED
                  and v.msg.server.task_state == NONE
                  and v.msg.task_changed_at.seconds < time.time() - self.confirm_window):
                try:
                    await begin_confirm_or_revert(self.c.store, v, "confirm_resize", SYSTEM)
                    _log.info("resize auto-confirmed", instance_id=v.msg.server.id)
                except errors.NimbusError:
                    pass   # the user confirmed or reverted first: fine

    async def _fail_move(self, v: Versioned, host: str) -> None:
        """A host of a move went down: the move fails (ERROR with a fault,
        the migration error, the context kept so a delete cleans both)."""
        try:
            await advance(self.c, conductor_pb2.AdvanceMigrationRequest(
                host=host, instance_id=v.msg.server.id, from_task_state=v.msg.server.task_state,
                fault=C.Fault(code=500, created_at=now(),
                              message=f"compute host {host} went down during the resize")))
            _log.info("move of a down host failed", instance_id=v.msg.server.id, host=host)
        except errors.NimbusError:
            pass   # changed meanwhile: the next sweep looks again

    # ---- the destination -----------------------------------------------------

    async def place(self, instance_id: str) -> None:
        # The informer's copy woke us; a stale one only loses the claim's race.
        current = await self.c.current(instance_id)
        if current is None or not needs_destination(current.msg):
            return
        rec, ctx = current.msg, current.msg.migration_context
        source = rec.server.host
        ignore = list(ctx.tried_hosts)
        if not self.allow_same_host and not ctx.requested_host:
            ignore.append(source)
        request = scheduler_pb2.SelectDestinationsRequest(num_alternates=self.c.max_attempts - 1)
        request.specs.add(instance_id=instance_id, project_id=rec.server.project_id,
                          resources=resources.for_flavor(ctx.new_flavor), ignore_hosts=ignore,
                          availability_zone=rec.server.availability_zone,
                          forced_host=ctx.requested_host)
        response = await self.scheduler.SelectDestinations(request, metadata=self.metadata,
                                                           timeout=30)
        selection = response.selections[0]
        for host in selection.hosts:
            node = self.c.nodes.items.get(keys.node(host)) or await self.c.store.get(
                keys.node(host), R.NodeRecord)
            if node is None or node.msg.disabled:
                continue
            for _ in range(CLAIM_RACES):
                # One claim per host at a time in this process (the compares
                # make it correct; the lock spares lost races).
                async with self.c.claims.lock(host):
                    outcome = await self._claim(current, host, node.msg)
                if outcome == CLAIMED:
                    _log.info("move destination claimed", instance_id=instance_id,
                              source=source, dest=host)
                    return
                current = await self.c.store.get(keys.instance(instance_id), R.InstanceRecord)
                if current is None or not needs_destination(current.msg):
                    return
                if outcome == NO_ROOM:
                    break
        reason = selection.reason or "There are not enough hosts available."
        await self._no_valid_host(current, "No valid host was found. " + reason)

    async def _claim(self, current: Versioned, host: str, node: R.NodeRecord) -> str:
        rec = R.InstanceRecord()
        rec.CopyFrom(current.msg)
        ctx = rec.migration_context
        store = self.c.store
        changes = {(host, rec.server.id): resources.for_flavor(ctx.new_flavor)}
        mkey = keys.migration(ctx.migration_id)
        got = await store.get_many({**migrations.allocation_keys(changes),
                                    mkey: R.MigrationRecord})
        if got[mkey] is None:
            return LOST_RACE   # deleted meanwhile: the caller reads the instance again
        try:
            frag = await migrations.allocations(store, changes, nodes={host: node},
                                                project_id=rec.server.project_id, known=got)
        except migrations.NoRoom:
            return NO_ROOM
        mfrag, mig = migrations.with_status(store, got[mkey], "pre-migrating", dest_host=host)
        ctx.dest_host = host
        rec.server.updated_at.CopyFrom(now())
        ikey = keys.instance(rec.server.id)
        resp = await store.txn(
            [store.mod_is(ikey, current.mod_revision), *frag.compares, *mfrag.compares],
            [store.put(ikey, rec), *frag.ops, *mfrag.ops])
        if not resp.succeeded:
            return LOST_RACE
        self.c.recent_migrations.wrote(mig, resp.header.revision)
        return CLAIMED

    async def _no_valid_host(self, current: Versioned, message: str) -> None:
        """Everything as it was before the resize, the migration in error."""
        rec = R.InstanceRecord()
        rec.CopyFrom(current.msg)
        ctx = rec.migration_context
        store = self.c.store
        frag = await migrations.allocations(store, {
            (ctx.source_host, ctx.migration_id): None,
            (ctx.source_host, rec.server.id): resources.for_flavor(ctx.old_flavor)},
            project_id=rec.server.project_id)
        frag.add(*(await migrations.quota_fragment(store, rec.server.project_id, -ctx.upsize_vcpus,
                                                   -ctx.upsize_ram_mb)).astuple())
        mig = await migrations.get(store, ctx.migration_id)
        frag.add(*migrations.with_status(store, mig, "error")[0].astuple())
        frag.add(*(await self.c.action_event(rec, "conductor_migrate_server", "Error", "",
                                             rec.task_changed_at, message)))
        rec.ClearField("migration_context")
        rec.server.task_state = NONE
        rec.server.updated_at.CopyFrom(now())
        rec.task_changed_at.CopyFrom(now())
        ikey = keys.instance(rec.server.id)
        resp = await store.txn([store.mod_is(ikey, current.mod_revision), *frag.compares],
                               [store.put(ikey, rec), *frag.ops])
        if resp.succeeded:
            _log.info("no valid host for a move", instance_id=rec.server.id, reason=message)
        else:
            self.pending.add(rec.server.id)   # changed meanwhile: look again


# ---- a host's step done (AdvanceMigration) ----------------------------------------

# from task -> (the role that reports it, the next task, the migration status).
# The source's part (power off, keep the disks) is one report, and so is the
# destination's (fetch, define): MIGRATING and FINISH are only left by an
# older agent that reported each half.
STEPS = {
    C.TASK_STATE_RESIZE_PREP: ("source", C.TASK_STATE_RESIZE_MIGRATED, "post-migrating"),
    C.TASK_STATE_RESIZE_MIGRATING: ("source", C.TASK_STATE_RESIZE_MIGRATED, "post-migrating"),
    C.TASK_STATE_RESIZE_MIGRATED: ("dest", NONE, "finished"),
    C.TASK_STATE_RESIZE_FINISH: ("dest", NONE, "finished"),
    C.TASK_STATE_RESIZE_CONFIRMING: ("source", NONE, "confirmed"),
}
FINISHED = (C.TASK_STATE_RESIZE_MIGRATED, C.TASK_STATE_RESIZE_FINISH)   # the destination's report


async def advance(conductor, request) -> tuple[R.InstanceRecord, int]:
    """Apply one host's finished step, everything in one transaction. The
    records it changes are read in one round trip at most: the instance
    from the informer (etcd's when that copy is behind: an agent reporting
    two steps in a row, or a lost race), the migration from what this
    process wrote last when that is provably current (migrations.Recent)."""
    store = conductor.store
    ikey = keys.instance(request.instance_id)
    current, fresh = conductor.cached(request.instance_id), False
    for _ in range(5):
        if not fresh and (current is None or current.msg.server.task_state
                          != request.from_task_state):
            current, fresh = await store.get(ikey, R.InstanceRecord), True
        if current is None:
            raise errors.NotFound("server", request.instance_id)
        rec = R.InstanceRecord()
        rec.CopyFrom(current.msg)
        server, ctx = rec.server, migrations.context_of(rec)
        if server.task_state != request.from_task_state or ctx is None:
            raise errors.UnexpectedTaskState(server.id, states.task_state_name(server.task_state),
                                             [states.task_state_name(request.from_task_state)])
        # What this step changes: allocations, quota (cores, RAM), an event.
        changes, quota_delta, event = None, (0, 0), ""
        if request.HasField("fault"):
            role, status, task, vm = ("dest" if request.host == ctx.dest_host else "source",
                                      "error", NONE, C.VM_STATE_ERROR)
            server.fault.CopyFrom(request.fault)
            event = states.TASKS[request.from_task_state].event or "compute_resize_instance"
        elif request.from_task_state == C.TASK_STATE_RESIZE_REVERTING and not ctx.dest_reverted:
            # The destination cleaned up: the server is the source's again,
            # with its old flavor; its claim is dropped and the source's
            # handed back to the instance (on a same-host resize the two are
            # one key: the dict keeps the last).
            changes = {(ctx.dest_host, server.id): None, (ctx.source_host, ctx.migration_id): None,
                       (ctx.source_host, server.id): resources.for_flavor(ctx.old_flavor)}
            role, task, status, vm = "dest", C.TASK_STATE_RESIZE_REVERTING, "reverting", server.vm_state
            ctx.dest_reverted = True
            server.host = ctx.source_host
            server.flavor.CopyFrom(ctx.old_flavor)
            server.flavor_ref = ctx.old_flavor.id
        elif request.from_task_state == C.TASK_STATE_RESIZE_REVERTING:
            # The source runs again: the move is over.
            role, task, status, vm = "source", NONE, "reverted", ctx.old_vm_state
            quota_delta = (-ctx.upsize_vcpus, -ctx.upsize_ram_mb)
            event = states.TASKS[request.from_task_state].event
        else:
            role, task, status = STEPS[request.from_task_state]
            vm = server.vm_state
            if request.from_task_state in FINISHED:
                vm = C.VM_STATE_RESIZED
                server.host = ctx.dest_host
                server.flavor.CopyFrom(ctx.new_flavor)
                server.flavor_ref = ctx.new_flavor.id
                event = states.TASKS[request.from_task_state].event
            elif request.from_task_state == C.TASK_STATE_RESIZE_CONFIRMING:
                vm = (C.VM_STATE_ACTIVE if server.power_state == C.POWER_STATE_RUNNING
                      else C.VM_STATE_STOPPED)
                changes = {(ctx.source_host, ctx.migration_id): None}
                quota_delta = (-ctx.downsize_vcpus, -ctx.downsize_ram_mb)
                event = states.TASKS[request.from_task_state].event
        host_of_role = ctx.source_host if role == "source" else ctx.dest_host
        if request.host != host_of_role:
            raise errors.FailedPrecondition(
                f"server {server.id}: this step is for host {host_of_role}, not {request.host}")
        if not request.HasField("fault") and not states.migration_may_go(server, task, vm):
            raise errors.FailedPrecondition(f"server {server.id}: no such step from "
                                            f"{states.task_state_name(server.task_state)}")
        # One round trip for every record the step reads.
        mkey = keys.migration(ctx.migration_id)
        akey = keys.action(server.id, rec.request_id) if event and rec.request_id else ""
        mig = conductor.recent_migrations.get(ctx.migration_id, current.mod_revision)
        wanted = migrations.allocation_keys(changes) if changes else {}
        if mig is None:
            wanted[mkey] = R.MigrationRecord
        if akey:
            wanted[akey] = R.InstanceAction
        if any(quota_delta):
            wanted.update(quota.snapshot_keys(server.project_id))
        got = await store.get_many(wanted)
        mig = mig or got[mkey]
        if mig is None:
            raise errors.FailedPrecondition(f"server {server.id}: its migration is gone")
        frag = migrations.Fragment()
        if changes:
            frag.add(*(await migrations.allocations(store, changes, project_id=server.project_id,
                                                    known=got)).astuple())
        frag.add(*(await migrations.quota_fragment(store, server.project_id,
                                                   *quota_delta, known=got)).astuple())
        if request.power_state:
            server.power_state = request.power_state
        if akey:
            frag.add(*conductor.event_ops(
                akey, got[akey], event, "Error" if request.HasField("fault") else "Success",
                request.host, rec.task_changed_at, request.fault.message))
        mfrag, new_mig = migrations.with_status(store, mig, status)
        frag.add(*mfrag.astuple())
        server.vm_state, server.task_state = vm, task
        if task == NONE and vm != C.VM_STATE_RESIZED and status != "error":
            rec.ClearField("migration_context")   # the move is over
        stamp = now()
        server.updated_at.CopyFrom(stamp)
        if task != request.from_task_state:
            rec.task_changed_at.CopyFrom(stamp)
        crashpoints.reach(f"conductor:advance:{C.TaskState.Name(request.from_task_state)}")
        resp = await store.txn([store.mod_is(ikey, current.mod_revision), *frag.compares],
                               [store.put(ikey, rec), *frag.ops])
        if resp.succeeded:
            conductor.recent_migrations.wrote(new_mig, resp.header.revision)
            # A host's step report is service chatter (debug, as the agents'
            # UpdateInstance calls); a failed step is news.
            (_log.info if request.HasField("fault") else _log.debug)(
                "move advanced", instance_id=server.id, host=request.host,
                task_state=states.task_state_name(task), migration=status)
            return rec, resp.header.revision
        conductor.recent_migrations.forget(ctx.migration_id)
        current, fresh = await store.get(ikey, R.InstanceRecord), True
    raise errors.Unavailable("too many concurrent changes to this server; retry")
