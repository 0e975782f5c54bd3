"""ConductorService: the agents' door. Agents report nodes, receive their
assignments as a stream, and send every state change back here, where it is
applied with compare-and-swap on the expected task states."""

from __future__ import annotations

import asyncio
import collections

from nimbus import crashpoints, errors, instances, ipam, log, metrics, migrations, states
from nimbus.compute.v1 import compute_pb2, networks_pb2
from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.conductor.claims import Claims, InstanceChanged
from nimbus.services.conductor import moves, volumes
from nimbus.services.conductor.console import CONSOLE, ConsoleRelay
from nimbus.services.conductor.removals import Remover
from nimbus.services.conductor.transfer import DISK_REQUEST, DiskRelay
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import DELETED, OVERFLOW, SYNCED, Informer
from nimbus.store.store import ExtraCompareFailed, Store, Versioned, now

_log = log.get("nimbus.conductor")

TS = compute_pb2
Event = conductor_pb2.StreamAssignmentsResponse


def max_retries_fault(instance_id: str, last: compute_pb2.Fault) -> compute_pb2.Fault:
    return compute_pb2.Fault(
        code=500, created_at=now(), details=last.details,
        message=("Exceeded maximum number of retries. Exhausted all hosts available for "
                 f"retrying build failures for instance {instance_id}. Last error: {last.message}"))



def hosts_of(rec: records_pb2.InstanceRecord) -> tuple[str, ...]:
    """The hosts whose assignment stream carries this instance: its host,
    and both hosts of a move (Nova's migration context)."""
    if rec.HasField("migration_context"):
        return (rec.server.host, rec.migration_context.source_host, rec.migration_context.dest_host)
    return (rec.server.host,)


class Conductor:
    """State shared by the handlers and the leader's loops."""

    def __init__(self, store: Store, max_attempts: int, node_ttl: int):
        self.store = store
        self.max_attempts = max_attempts
        self.node_ttl = node_ttl
        self.instances = Informer(store, keys.INSTANCES, records_pb2.InstanceRecord,
                                  index=hosts_of)
        self.networks = Informer(store, keys.NETWORKS, networks_pb2.Network)
        self.nodes = Informer(store, keys.NODES, records_pb2.NodeRecord)
        self.providers = Informer(store, keys.PROVIDERS, records_pb2.ProviderUsage)
        self.claims = Claims(store, self.providers)
        self.remover = Remover(store, self.claims)
        self.quota_locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self.consoles = ConsoleRelay()
        self.disks = DiskRelay(self.consoles.streams)
        self.recent_migrations = migrations.Recent()   # what moves wrote last

    def cached(self, instance_id: str) -> Versioned | None:
        return self.instances.items.get(keys.instance(instance_id))

    async def current(self, instance_id: str) -> Versioned | None:
        return self.cached(instance_id) or await self.store.get(
            keys.instance(instance_id), records_pb2.InstanceRecord)

    async def action_event(self, rec: records_pb2.InstanceRecord, event: str, result: str,
                           host: str, start, details: str = "") -> tuple[list, list]:
        """(compares, ops) adding an event to the server's create action in
        the caller's transaction (Nova's instance action events)."""
        if not rec.request_id:
            return [], []
        akey = keys.action(rec.server.id, rec.request_id)
        return self.event_ops(akey, await self.store.get(akey, records_pb2.InstanceAction),
                              event, result, host, start, details)

    def event_ops(self, akey: str, action: Versioned | None, event: str, result: str,
                  host: str, start, details: str = "") -> tuple[list, list]:
        """action_event's (compares, ops) for an action already read."""
        if action is None:
            return [], []
        action.msg.events.add(event=event, start_time=start, finish_time=now(), result=result,
                              host=host, details=details)
        return [self.store.mod_is(akey, action.mod_revision)], [self.store.put(akey, action.msg)]

    async def group_hosts(self, group_id: str, exclude: str, fresh: bool = False) -> list[str]:
        """Hosts of the group's placed members, one entry per member. `fresh`
        reads etcd (the late check must not trust a lagging cache)."""
        if fresh:
            items, _ = await self.store.list(keys.INSTANCES, records_pb2.InstanceRecord)
            records = (v.msg for _, v in items)
        else:
            records = (v.msg for v in self.instances.items.values())
        return [r.server.host for r in records
                if r.server.server_group == group_id and r.server.host and r.server.id != exclude]

    async def group_violation(self, rec: records_pb2.InstanceRecord, host: str) -> str:
        """Nova's _validate_instance_group_policy, on fresh data."""
        group, policy = rec.server.server_group, rec.group_policy
        if not group or policy not in ("affinity", "anti-affinity"):
            return ""
        hosts = await self.group_hosts(group, rec.server.id, fresh=True)
        if policy == "anti-affinity" and hosts.count(host) >= max(1, rec.group_max_per_host):
            return "Anti-affinity instance group policy was violated."
        if policy == "affinity" and any(h != host for h in hosts):
            return "Affinity instance group policy was violated."
        return ""

    async def give_back(self, instance_id: str, host: str, fault: compute_pb2.Fault,
                        expected=None) -> compute_pb2.Server:
        """Take a server off `host` after a failed build: drop the claim and
        either hand it back to scheduling (alternates first) or, when the
        attempts are used up, put it in ERROR with a fault."""
        current = self.cached(instance_id)
        maybe_stale = current is not None   # informer copies lag: confirm refusals
        if current is None:
            current = await self.store.get(keys.instance(instance_id), records_pb2.InstanceRecord)
        while True:
            try:
                if current is None:
                    raise errors.NotFound("server", instance_id)
                server = current.msg.server
                if server.host != host:
                    raise errors.FailedPrecondition(f"server {instance_id} is not on host {host}")
                if expected and server.task_state not in expected:
                    raise errors.UnexpectedTaskState(
                        instance_id, TS.TaskState.Name(server.task_state),
                        [TS.TaskState.Name(s) for s in expected])
            except errors.NimbusError:
                if not maybe_stale:
                    raise
                maybe_stale = False
                current = await self.store.get(keys.instance(instance_id),
                                               records_pb2.InstanceRecord)
                continue
            new = records_pb2.InstanceRecord()
            new.CopyFrom(current.msg)
            new.tried_hosts.append(host)
            new.server.host = ""
            new.server.updated_at.CopyFrom(now())
            new.task_changed_at.CopyFrom(now())
            event = ([], [])
            if len(new.tried_hosts) >= self.max_attempts:
                new.server.vm_state = TS.VM_STATE_ERROR
                new.server.task_state = TS.TASK_STATE_UNSPECIFIED
                new.server.fault.CopyFrom(max_retries_fault(instance_id, fault))
                event = await self.action_event(current.msg, "compute__do_build_and_run_instance",
                                                "Error", host, current.msg.build_started_at,
                                                new.server.fault.message)
            else:
                new.server.vm_state = TS.VM_STATE_BUILDING
                new.server.task_state = TS.TASK_STATE_SCHEDULING
                new.server.fault.CopyFrom(fault)   # why it was rescheduled, as Nova records
            ikey = keys.instance(instance_id)
            try:
                await self.claims.release_with(
                    host, instance_id, [self.store.mod_is(ikey, current.mod_revision), *event[0]],
                    [self.store.put(ikey, new), *event[1]])
            except InstanceChanged:
                current = await self.store.get(ikey, records_pb2.InstanceRecord)
                maybe_stale = False
                continue
            if new.server.vm_state == TS.VM_STATE_ERROR:
                await ipam.release_for_server(self.store, instance_id)   # a failed build keeps no ports
            _log.info("build given back", instance_id=instance_id, host=host,
                      reason=fault.message, next="error" if new.server.vm_state == TS.VM_STATE_ERROR
                      else "reschedule")
            return new.server

    async def finish_delete(self, instance_id: str, host: str | None) -> None:
        """Remove a DELETING server's records and its claim in one transaction.
        Idempotent: a server already gone is fine."""
        ikey = keys.instance(instance_id)
        current = await self.current(instance_id)
        while current is not None:
            server = current.msg.server
            if server.task_state != TS.TASK_STATE_DELETING:
                raise errors.FailedPrecondition(f"server {instance_id} is not being deleted")
            if host is not None and server.host != host:
                raise errors.FailedPrecondition(f"server {instance_id} is not on host {host}")
            # The record, its actions, its claim and its quota usage go
            # together: group-committed per host (removals.py) unless it
            # leaves a server group (that record is compared and rewritten
            # by each removal) or is mid-move (two hosts' allocations); then
            # one release per project at a time here (correctness is the
            # compare's, the lock saves retries).
            try:
                ctx = migrations.context_of(current.msg)
                if server.host and not server.server_group and ctx is None:
                    await self.remover.remove(server.host, current)
                else:
                    async with self.quota_locks[server.project_id]:
                        compares, ops = await instances.removal(self.store, current)
                        if ctx is not None:
                            # Mid-move: both hosts' allocations go, and the migration ends.
                            await self._remove_moving(current, ctx, compares, ops)
                        elif server.host:
                            await self.claims.release_with(server.host, instance_id, compares,
                                                           ops)
                        elif not (await self.store.txn(compares, ops)).succeeded:
                            raise InstanceChanged(instance_id)
                crashpoints.reach("conductor:delete:removed")
                # The record is gone, so no late allocation can recreate ports.
                await ipam.release_for_server(self.store, instance_id)
                return
            except InstanceChanged:
                current = await self.store.get(ikey, records_pb2.InstanceRecord)


    async def _remove_moving(self, current: Versioned, ctx, compares: list, ops: list) -> None:
        sid = current.msg.server.id
        changes = {(h, sid): None for h in (current.msg.server.host, ctx.dest_host) if h}
        changes[(ctx.source_host, ctx.migration_id)] = None
        frag = await migrations.allocations(self.store, changes)
        mig = await migrations.get(self.store, ctx.migration_id)
        if mig is not None and mig.msg.migration.status not in migrations.FINAL:
            frag.add(*migrations.with_status(self.store, mig, "error")[0].astuple())
        if not (await self.store.txn([*compares, *frag.compares], [*ops, *frag.ops])).succeeded:
            raise InstanceChanged(sid)


class ConductorServicer(conductor_pb2_grpc.ConductorServiceServicer):
    def __init__(self, conductor: Conductor):
        self.c = conductor
        self.store = conductor.store
        self._node_leases: dict[str, int] = {}   # host -> its lease, checked once

    async def ReportNode(self, request, context):
        auth.require_service()
        node = request.node
        if not node.host:
            raise errors.InvalidArgument("node.host", "required")
        ttl = await self.store.refresh(request.lease_id) \
            if await self._leases_host(request.lease_id, node.host) else 0
        lease = request.lease_id
        cached = self.c.nodes.items.get(keys.node(node.host))
        if ttl <= 0:
            lease = await self.store.grant(self.c.node_ttl)
            ttl = self.c.node_ttl
        elif cached is not None and cached.msg == node:
            return conductor_pb2.ReportNodeResponse(lease_id=lease, ttl_seconds=ttl)
        # The node record rides on the lease, with the key that says whose
        # lease it is; the provider usage does not (claims outlive an agent
        # restart).
        pkey = keys.provider(node.host)
        await self.store.txn([], [self.store.put(keys.node(node.host), node, lease=lease),
                                  self.store.put(keys.node_lease(node.host, lease),
                                                 records_pb2.NodeRecord(), lease=lease)])
        self._node_leases[node.host] = lease
        await self.store.txn([self.store.mod_is(pkey, 0)],
                             [self.store.put(pkey, records_pb2.ProviderUsage(host=node.host))])
        if cached is None or request.lease_id != lease:
            _log.info("node registered", host=node.host, lease_ttl=ttl)
        return conductor_pb2.ReportNodeResponse(lease_id=lease, ttl_seconds=ttl)

    async def _leases_host(self, lease_id: int, host: str) -> bool:
        """Whether `lease_id` is `host`'s node lease: an agent may keep only
        its own host alive, never refresh another host's lease it learnt."""
        if not lease_id:
            return False
        if self._node_leases.get(host) == lease_id:
            return True
        if await self.store.get_raw(keys.node_lease(host, lease_id)) is None:
            return False   # expired, or another host's: a new lease is granted
        self._node_leases[host] = lease_id
        return True

    async def StreamAssignments(self, request, context):
        auth.require_service()
        host = request.host
        if not host:
            raise errors.InvalidArgument("host", "required")
        await self.c.instances.synced.wait()
        sub = self.c.instances.subscribe(lambda rec: host in hosts_of(rec), key=host)
        self.c.consoles.register(host, sub)
        sent_inputs: set[str] = set()
        try:
            while True:
                kind, rec = await sub.queue.get()
                if kind == CONSOLE:
                    yield Event(type=Event.EVENT_TYPE_CONSOLE_REQUEST, console=rec)
                elif kind == DISK_REQUEST:
                    yield Event(type=Event.EVENT_TYPE_DISK_REQUEST, disk_request=rec)
                elif kind == OVERFLOW:
                    raise errors.Unavailable("the watch fell too far behind; watch again")
                elif kind == SYNCED:
                    yield Event(type=Event.EVENT_TYPE_SYNCED)
                elif kind == DELETED:
                    yield Event(type=Event.EVENT_TYPE_DELETED, server=rec.msg.server,
                                revision=rec.mod_revision)
                else:
                    build = rec.msg.server.vm_state == TS.VM_STATE_BUILDING
                    inputs = rec.msg
                    if build and rec.msg.build_inputs_apart:
                        # Kept apart from the watched record: read once per
                        # stream, for the host that builds it (the agent keeps them).
                        build = rec.msg.server.id not in sent_inputs
                        if build:
                            found = await self.store.get(keys.build_inputs(rec.msg.server.id),
                                                         records_pb2.BuildInputs)
                            inputs = found.msg if found else records_pb2.BuildInputs()
                            sent_inputs.add(rec.msg.server.id)
                    yield Event(type=Event.EVENT_TYPE_UPSERT, server=rec.msg.server,
                                revision=rec.mod_revision,
                                migration_context=migrations.context_of(rec.msg),
                                # Build inputs only while building: they can be large.
                                user_data=inputs.user_data if build else b"",
                                public_keys=rec.msg.public_keys if build else {},
                                personality=inputs.personality if build else (),
                                volumes=rec.msg.volumes)
        finally:
            self.c.consoles.unregister(host, sub)
            sub.close()

    async def UpdateInstance(self, request, context):
        auth.require_service()
        server_id = request.server.id
        paths = set(request.update_mask.paths)
        if not server_id:
            raise errors.InvalidArgument("server.id", "required")
        if not paths or not paths <= states.AGENT_FIELDS:
            raise errors.InvalidArgument(
                "update_mask", f"must name some of {', '.join(sorted(states.AGENT_FIELDS))}")
        expected = list(request.expected_task_states) or None
        host = request.host

        ending = states.ending_event(
            list(request.expected_task_states),
            request.server.task_state if "task_state" in paths else -1)

        def mutate(rec: records_pb2.InstanceRecord):
            if rec.server.host != host:
                raise errors.FailedPrecondition(f"server {server_id} is not on host {host}")
            task_state = request.server.task_state if "task_state" in paths else rec.server.task_state
            vm_state = request.server.vm_state if "vm_state" in paths else None
            if not states.agent_may_set(rec.server, task_state, vm_state):
                raise errors.FailedPrecondition(
                    f"server {server_id}: an agent may not move it from vm_state "
                    f"{states.vm_state_name(rec.server.vm_state)}, task_state "
                    f"{states.task_state_name(rec.server.task_state)} to task_state "
                    f"{states.task_state_name(task_state)}"
                    + (f", vm_state {states.vm_state_name(vm_state)}" if vm_state is not None else ""))
            if ending and rec.request_id != event_for:
                raise ExtraCompareFailed()   # the event was made for another action: again
            before = rec.server.task_state
            request.update_mask.MergeMessage(request.server, rec.server, True, True)
            stamp = now()
            rec.server.updated_at.CopyFrom(stamp)
            if rec.server.task_state != before:
                rec.task_changed_at.CopyFrom(stamp)
                if rec.server.task_state == TS.TASK_STATE_NETWORKING:
                    rec.build_started_at.CopyFrom(stamp)
            return event

        current = self.c.cached(server_id)
        if ending and current is None:
            current = await self.store.get(keys.instance(server_id), records_pb2.InstanceRecord)
        for _ in range(5):
            event = ((), ())
            event_for = current.msg.request_id if current is not None else ""
            if ending and current is not None:
                # The task's end joins its instance action as an event, same txn.
                failed = "fault" in paths
                build = ending == "compute__do_build_and_run_instance"
                event = await self.c.action_event(
                    current.msg, ending, "Error" if failed else "Success", host,
                    current.msg.build_started_at if build else current.msg.task_changed_at,
                    request.server.fault.message if failed else "")
            try:
                updated = await self.store.update_instance(
                    server_id, mutate, expected_task_states=expected, current=current)
                break
            except ExtraCompareFailed:   # the action changed meanwhile: read both again
                current = await self.store.get(keys.instance(server_id), records_pb2.InstanceRecord)
        else:
            raise errors.Unavailable("too many concurrent changes to this server; retry")
        if ending == "compute__do_build_and_run_instance":
            active = updated.msg.server.vm_state == TS.VM_STATE_ACTIVE
            metrics.BUILDS.labels("active" if active else "error").inc()
            if active:
                metrics.TIME_TO_ACTIVE.observe(max(0.0, (
                    updated.msg.server.updated_at.ToNanoseconds()
                    - updated.msg.server.created_at.ToNanoseconds()) / 1e9))
        return conductor_pb2.UpdateInstanceResponse(server=updated.msg.server,
                                                     revision=updated.mod_revision)

    async def RescheduleInstance(self, request, context):
        auth.require_service()
        server = await self.c.give_back(request.instance_id, request.host, request.fault,
                                        list(request.expected_task_states))
        metrics.RESCHEDULES.inc()
        return conductor_pb2.RescheduleInstanceResponse(server=server)

    async def AllocateNetworks(self, request, context):
        auth.require_service()
        sid, host = request.instance_id, request.host
        current = await self.c.current(sid)
        if current is None:
            raise errors.NotFound("server", sid)
        rec = current.msg
        if rec.server.host != host:
            raise errors.FailedPrecondition(f"server {sid} is not on host {host}")
        fault = None
        try:
            if not ipam.may_have_ports((v.msg for v in self.c.networks.items.values()),
                                       rec.server.project_id, rec.networks, rec.networks_mode):
                vifs = []   # nothing to allocate: spare IPAM its reads (the common boot)
            else:
                vifs = await ipam.allocate_for_server(
                    self.store, sid, rec.server.project_id, rec.networks, rec.networks_mode,
                    security_groups=rec.server.security_groups)
        except (errors.NotFound, errors.FailedPrecondition, errors.AlreadyExists,
                errors.InvalidArgument, errors.ResourceExhausted) as exc:
            # Final for this request: no other host would get other ports.
            vifs = []
            fault = compute_pb2.Fault(code=500, created_at=now(),
                                      message=f"Build of instance {sid} aborted: {exc.message}")

        def mutate(r: records_pb2.InstanceRecord):
            if r.server.host != host:
                raise errors.FailedPrecondition(f"server {sid} is not on host {host}")
            stamp = now()
            r.server.updated_at.CopyFrom(stamp)
            r.task_changed_at.CopyFrom(stamp)
            if fault is None:
                r.server.task_state = TS.TASK_STATE_BLOCK_DEVICE_MAPPING
            else:
                r.server.vm_state = TS.VM_STATE_ERROR
                r.server.task_state = TS.TASK_STATE_UNSPECIFIED
                r.server.fault.CopyFrom(fault)

        updated = await self.store.update_instance(
            sid, mutate, expected_task_states=[TS.TASK_STATE_NETWORKING], current=self.c.cached(sid))
        if fault is not None:
            _log.info("network allocation failed", instance_id=sid, reason=fault.message)
        return conductor_pb2.AllocateNetworksResponse(
            server=updated.msg.server, revision=updated.mod_revision, vifs=vifs, fault=fault)

    async def CheckServerGroup(self, request, context):
        auth.require_service()
        rec = await self.store.get(keys.instance(request.instance_id), records_pb2.InstanceRecord)
        if rec is None:
            raise errors.NotFound("server", request.instance_id)
        violation = await self.c.group_violation(rec.msg, request.host)
        if violation:
            raise errors.FailedPrecondition(violation)
        return conductor_pb2.CheckServerGroupResponse()

    async def FinishDeleteInstance(self, request, context):
        auth.require_service()
        await self.c.finish_delete(request.instance_id, request.host)
        return conductor_pb2.FinishDeleteInstanceResponse()

    async def GetConsoleOutput(self, request, context):
        auth.require_service()
        current = await self.c.current(request.instance_id)
        if current is None:
            raise errors.NotFound("server", request.instance_id)
        host = current.msg.server.host
        if not host:
            raise errors.FailedPrecondition(f"server {request.instance_id} has no host")
        output = await self.c.consoles.ask(host, request.instance_id, request.length)
        return conductor_pb2.GetConsoleOutputResponse(output=output)

    async def ReturnConsoleOutput(self, request, context):
        auth.require_service()
        self.c.consoles.answer(request.host, request.request_id, request.output, request.error)
        return conductor_pb2.ReturnConsoleOutputResponse()

    async def CompleteVolumeAttachment(self, request, context):
        auth.require_service()
        await volumes.complete(self.c.store, request)
        return conductor_pb2.CompleteVolumeAttachmentResponse()

    async def AdvanceMigration(self, request, context):
        auth.require_service()
        rec, revision = await moves.advance(self.c, request)
        return conductor_pb2.AdvanceMigrationResponse(
            server=rec.server, revision=revision, migration_context=migrations.context_of(rec))

    async def FetchDisks(self, request, context):
        auth.require_service()
        current = await self.c.current(request.instance_id)
        if current is None:
            raise errors.NotFound("server", request.instance_id)
        async for chunk in self.c.disks.fetch(current.msg, request.host):
            yield conductor_pb2.FetchDisksResponse(chunk=chunk)

    async def PushDisks(self, request_iterator, context):
        auth.require_service()
        await self.c.disks.push(request_iterator)
        return conductor_pb2.PushDisksResponse()
