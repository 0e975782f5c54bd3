"""The leader's loops: schedule servers waiting in SCHEDULING, and sweep for
servers whose host died, so no server waits in a task state forever.

Level-triggered: on election the leader scans every instance, then reacts
to the informer's changes; a server in SCHEDULING without a host is work,
whoever put it there (the API, a reschedule, a restart)."""

from __future__ import annotations

import asyncio
import time

import grpc

from nimbus import crashpoints, errors, ipam, log, metrics, migrations, resources, states
from nimbus.compute.v1 import compute_pb2
from nimbus.scheduler.v1 import scheduler_pb2
from nimbus.services.conductor.claims import InstanceChanged
from nimbus.services.conductor.handlers import Conductor, max_retries_fault
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import UPSERT
from nimbus.store.store import ExtraCompareFailed, Versioned, now

_log = log.get("nimbus.conductor")
TS = compute_pb2
NO_VALID_HOST = "No valid host was found. "
ORPHAN_SWEEP_EVERY = 15      # sweeps between allocation audits (a range read)
POWER_STEPS = ("stop", "start", "reboot")


def _holds(rec: records_pb2.InstanceRecord, host: str) -> bool:
    """Does the instance hold an allocation on `host` (its own, or a move's
    destination claim)?"""
    ctx = migrations.context_of(rec)
    return rec.server.host == host or (ctx is not None and ctx.dest_host == host)


def needs_scheduling(server: compute_pb2.Server) -> bool:
    return (server.vm_state == TS.VM_STATE_BUILDING and server.task_state == TS.TASK_STATE_SCHEDULING
            and not server.host)


class BuildScheduler:
    def __init__(self, conductor: Conductor, scheduler_stub, metadata, num_alternates: int = 2,
                 sweep_interval: float = 2.0):
        self.c = conductor
        self.scheduler = scheduler_stub
        self.metadata = metadata
        self.num_alternates = num_alternates
        self.sweep_interval = sweep_interval
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.metrics = metrics.ControllerMetrics("builds", lambda: len(self.pending))
        # host -> when this leader first saw it without a live node record.
        self._missing_since: dict[str, float] = {}
        self._sweeps = 0
        self._leading_since = 0.0

    def _on_instance(self, kind, key, new, old) -> None:
        if kind == UPSERT and needs_scheduling(new.msg.server):
            self.pending.add(new.msg.server.id)
            self.wake.set()

    async def lead(self) -> None:
        await self.c.instances.synced.wait()
        await self.c.nodes.synced.wait()
        await self.c.providers.synced.wait()   # _hosts_may_be_unreported reads it
        self.c.instances.add_listener(self._on_instance)
        sweeper = asyncio.create_task(self._sweep_forever())
        self.metrics.start()
        self._leading_since = time.monotonic()
        try:
            for versioned in list(self.c.instances.items.values()):
                if needs_scheduling(versioned.msg.server):
                    self.pending.add(versioned.msg.server.id)
            self.wake.set()
            while True:
                await self.wake.wait()
                self.wake.clear()
                batch, self.pending = self.pending, set()
                try:
                    await self.schedule(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - retry the batch, never drop it
                    _log.warning("scheduling failed, retrying", error=str(exc), servers=len(batch))
                    self.metrics.retried(len(batch))
                    self.pending |= batch
                    await asyncio.sleep(0.5)
                    self.wake.set()
        finally:
            self.metrics.stop()
            self.c.instances.remove_listener(self._on_instance)
            sweeper.cancel()

    # ---- scheduling -----------------------------------------------------

    def _waiting(self, ids) -> list[Versioned]:
        out = []
        for instance_id in ids:
            v = self.c.cached(instance_id)
            if v is not None and needs_scheduling(v.msg.server):
                out.append(v)
        return out

    async def schedule(self, ids: set[str]) -> None:
        waiting = self._waiting(ids)
        if not waiting:
            return
        # A rescheduled server tries its alternates first (no scheduler call).
        fresh: list[Versioned] = []
        results = await asyncio.gather(*(self._try_alternates(v) for v in waiting))
        for v, placed in zip(waiting, results):
            if not placed:
                fresh.append(v)
        if fresh:
            await self._select_and_claim(fresh)

    async def _try_alternates(self, v: Versioned) -> bool:
        rec = v.msg
        hosts = [h for h in rec.alternates if h not in rec.tried_hosts]
        if not hosts:
            return False
        return await self._claim_first(v, hosts)

    async def _select_and_claim(self, waiting: list[Versioned], rounds: int = 3) -> None:
        ignore: dict[str, set[str]] = {v.msg.server.id: set() for v in waiting}
        for attempt in range(rounds):
            request = scheduler_pb2.SelectDestinationsRequest(num_alternates=self.num_alternates)
            for v in waiting:
                await self._add_spec(request, v, ignore[v.msg.server.id])
            response = await self.scheduler.SelectDestinations(request, metadata=self.metadata,
                                                               timeout=30)
            by_id = {v.msg.server.id: v for v in waiting}
            selections = list(response.selections)
            unreported = self._hosts_may_be_unreported()
            if unreported:   # no host now: neither placed nor failed, asked again later
                for selection in selections:
                    if not selection.hosts:
                        self._ask_again_later(selection.instance_id, unreported)
                selections = [s for s in selections if s.hosts]
            tasks, retry = [], []
            for selection in selections:
                v = by_id[selection.instance_id]
                if not selection.hosts:
                    tasks.append(self._no_valid_host(v, selection.reason))
                else:
                    tasks.append(self._claim_first(v, list(selection.hosts)))
            results = await asyncio.gather(*tasks)
            for selection, placed in zip(selections, results):
                if selection.hosts and not placed:
                    # The scheduler's view lagged behind the claims: ask again
                    # without those hosts.
                    ignore[selection.instance_id].update(selection.hosts)
                    retry.append(by_id[selection.instance_id])
            waiting = self._waiting(v.msg.server.id for v in retry)
            if not waiting:
                return
        await asyncio.gather(*(self._no_valid_host(v, "There are not enough hosts available.")
                               for v in waiting))

    def _hosts_may_be_unreported(self) -> float:
        """While no conductor led, agents could not report, so their nodes
        may have expired; they come back within a TTL (as host_down assumes).
        In this leader's first two TTLs, while a host with a provider record
        has no live node, a build finding no host is asked again when they
        are over (the seconds left), not failed. 0: decide now."""
        left = self._leading_since + 2 * self.c.node_ttl - time.monotonic()
        if left <= 0:
            return 0.0
        hosts = (key.removeprefix(keys.PROVIDERS) for key in self.c.providers.items)
        return left if any(keys.node(h) not in self.c.nodes.items for h in hosts) else 0.0

    def _ask_again_later(self, server_id: str, delay: float) -> None:
        def again() -> None:
            self.pending.add(server_id)
            self.wake.set()
        asyncio.get_running_loop().call_later(delay, again)

    async def _add_spec(self, request, v: Versioned, ignore: set[str]) -> None:
        """Nova's RequestSpec: resources, zone, forced host, server group
        (policy from the record, members' hosts from our view) and hints."""
        rec = v.msg
        server = rec.server
        spec = request.specs.add(
            instance_id=server.id, project_id=server.project_id,
            resources=resources.for_flavor(server.flavor),
            ignore_hosts=[*rec.tried_hosts, *ignore], availability_zone=server.availability_zone,
            forced_host=rec.forced_host, group_id=server.server_group,
            group_policy=rec.group_policy, group_max_per_host=rec.group_max_per_host)
        if server.server_group:
            spec.group_hosts.extend(await self.c.group_hosts(server.server_group, server.id))
        for hint, field in ((rec.scheduler_hints.same_host, spec.same_host),
                            (rec.scheduler_hints.different_host, spec.different_host)):
            for other in hint:
                found = self.c.cached(other)
                if found is not None and found.msg.server.host:
                    field.append(found.msg.server.host)
        if rec.scheduler_hints.same_host and not spec.same_host:
            spec.same_host.append("")   # none of them is placed: no host qualifies

    async def _claim_first(self, v: Versioned, hosts: list[str]) -> bool:
        """Claim on the first host that fits; the rest become alternates."""
        for i, host in enumerate(hosts):
            node = self.c.nodes.items.get(keys.node(host)) or await self.c.store.get(
                keys.node(host), records_pb2.NodeRecord)   # just registered: read through
            if node is None or node.msg.disabled:
                continue
            try:
                placed = await self.c.claims.claim(v, node.msg, hosts[i + 1:])
            except InstanceChanged:
                return True  # deleted or changed meanwhile: not ours to place any more
            if placed is not None:
                crashpoints.reach("conductor:build:claimed")
                return True
        return False

    async def _no_valid_host(self, v: Versioned, reason: str) -> bool:
        message = (max_retries_fault(v.msg.server.id, v.msg.server.fault).message
                   if v.msg.tried_hosts else NO_VALID_HOST + reason)
        event = await self.c.action_event(v.msg, "conductor_schedule_and_build_instances", "Error",
                                          "", v.msg.server.created_at, message)

        def mutate(rec):
            if rec.server.host:
                raise errors.FailedPrecondition("already placed")
            rec.server.vm_state = TS.VM_STATE_ERROR
            rec.server.task_state = TS.TASK_STATE_UNSPECIFIED
            rec.server.updated_at.CopyFrom(now())
            rec.task_changed_at.CopyFrom(now())
            if rec.tried_hosts:
                # Builds failed on every host it could go to: say why.
                rec.server.fault.CopyFrom(max_retries_fault(rec.server.id, rec.server.fault))
            else:
                rec.server.fault.CopyFrom(compute_pb2.Fault(
                    code=500, message=NO_VALID_HOST + reason, created_at=now()))
            return event
        try:
            await self.c.store.update_instance(v.msg.server.id, mutate, current=v,
                                               expected_task_states=[TS.TASK_STATE_SCHEDULING])
            _log.info("no valid host", instance_id=v.msg.server.id, reason=reason)
            if v.msg.tried_hosts:   # ports from an earlier host's attempt
                await ipam.release_for_server(self.c.store, v.msg.server.id)
        except (errors.NotFound, errors.FailedPrecondition):
            pass  # deleted or placed by someone else: nothing to do
        except ExtraCompareFailed:
            self.pending.add(v.msg.server.id)   # its action changed: look again
            self.wake.set()
        return False

    # ---- sweeping -------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, errors.NimbusError, OSError) as exc:
                _log.warning("sweep failed", error=str(exc))

    def host_down(self, host: str, clock: float) -> bool:
        """A host is down once its node record has been gone for two TTLs of
        this leader's own observation (agents re-register after a conductor
        restart within one TTL)."""
        if keys.node(host) in self.c.nodes.items:
            self._missing_since.pop(host, None)
            return False
        first = self._missing_since.setdefault(host, clock)
        return clock - first >= 2 * self.c.node_ttl

    async def release_orphaned_allocations(self) -> None:
        """An allocation whose instance is gone or lives on another host is
        released (a claim and its instance are written together, so this only
        follows a crash between a host's cleanup and its report, or a bug).
        Decided on a fresh read of the instance and released only if it is
        still so (compare on its mod_revision)."""
        items, _ = await self.c.store.list(keys.ALLOCATIONS, records_pb2.Allocation)
        for _, allocation in items:
            host, consumer = allocation.msg.host, allocation.msg.consumer_id
            ikey = keys.instance(consumer)
            inst = await self.c.store.get(ikey, records_pb2.InstanceRecord)
            if inst is not None and _holds(inst.msg, host):
                continue
            mig = await migrations.get(self.c.store, consumer)
            if mig is not None:   # a moving server's source allocation
                moving = await self.c.store.get(keys.instance(mig.msg.migration.server_id),
                                                records_pb2.InstanceRecord)
                ctx = migrations.context_of(moving.msg) if moving is not None else None
                if ctx is not None and ctx.migration_id == consumer and ctx.source_host == host:
                    continue
            _log.warning("releasing orphaned allocation", host=host, consumer=consumer)
            try:
                await self.c.claims.release_with(
                    host, consumer, [self.c.store.mod_is(ikey, inst.mod_revision if inst else 0)], [])
            except InstanceChanged:
                pass   # it moved meanwhile: the next sweep looks again

    async def sweep(self) -> None:
        self._sweeps += 1
        # Level-triggered backstop: whatever has waited for a host for a
        # while is pending again (not the fresh ones: their claim may be in
        # flight, and asking twice would count them twice).
        stale = time.time() - 2 * self.sweep_interval
        waiting = [v.msg.server.id for v in self.c.instances.items.values()
                   if needs_scheduling(v.msg.server) and v.msg.task_changed_at.seconds < stale]
        if waiting:
            self.pending.update(waiting)
            self.wake.set()
        if self._sweeps % ORPHAN_SWEEP_EVERY == 0:
            await self.release_orphaned_allocations()
        clock = time.monotonic()
        for v in list(self.c.instances.items.values()):
            server = v.msg.server
            if server.task_state == TS.TASK_STATE_DELETING and not server.host:
                await self.c.finish_delete(server.id, None)
            elif not server.host or not self.host_down(server.host, clock):
                continue
            elif server.task_state == TS.TASK_STATE_DELETING:
                # Nova's local delete: the host is gone, so is its domain.
                _log.info("deleting server of a down host", instance_id=server.id, host=server.host)
                await self.c.finish_delete(server.id, server.host)
            elif server.vm_state == TS.VM_STATE_BUILDING and server.task_state in states.BUILD_TASKS:
                fault = compute_pb2.Fault(code=500, created_at=now(),
                                          message=f"compute host {server.host} went down during the build")
                try:
                    await self.c.give_back(server.id, server.host, fault)
                except errors.NimbusError:
                    pass  # changed meanwhile; the next sweep looks again
            elif states.TASKS.get(server.task_state, states.TASKS[0]).step in POWER_STEPS:
                await self._end_power_task(v)

    async def _end_power_task(self, v: Versioned) -> None:
        """A power action whose host went down ends, with a fault, the
        vm_state as it was (no task state waits for a host forever)."""
        task = v.msg.server.task_state

        def mutate(rec):
            rec.server.task_state = TS.TASK_STATE_UNSPECIFIED
            rec.server.fault.CopyFrom(compute_pb2.Fault(
                code=500, created_at=now(), message=f"compute host {rec.server.host} went down "
                                                    f"during {states.TASKS[task].step}"))
            rec.server.updated_at.CopyFrom(now())
            rec.task_changed_at.CopyFrom(now())
        try:
            await self.c.store.update_instance(v.msg.server.id, mutate, current=v,
                                               expected_task_states=[task])
            _log.info("power action of a down host ended", instance_id=v.msg.server.id)
        except errors.NimbusError:
            pass  # changed meanwhile; the next sweep looks again
