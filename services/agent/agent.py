"""The compute agent: one per hypervisor host (nova-compute).

It registers its node through the conductor (a lease it keeps alive), holds
the conductor's assignment stream for its host, and acts on each server's
task_state, level-triggered: whatever state a server is in when the agent
(re)connects says what to do. Every state change goes back through the
conductor with the expected task states, so a concurrent delete wins
cleanly: the build's next update is refused and the build cleans up.

The build follows nova-compute: BUILDING with expected (SCHEDULING, none),
claim on the node, NETWORKING, BLOCK_DEVICE_MAPPING, SPAWNING (image into
the backend, domain XML, define, start, wait for RUNNING), then ACTIVE. A
failure cleans up and gives the server back for rescheduling."""

from __future__ import annotations

import asyncio
import os

import grpc

from nimbus import backoff, log, metrics, states
from nimbus.compute.v1 import compute_pb2, compute_pb2_grpc
from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
from nimbus.imagebackend import Backend
from nimbus.imagebackend.local import ImageCache
from nimbus.services.agent import build, delete, power, resize, volumes
from nimbus.services.agent.client import ConductorClient
from nimbus.services.agent.tracker import ResourceTracker
from nimbus.state.v1 import records_pb2
from nimbus.virt.driver import LibvirtDriver

C = compute_pb2
Event = conductor_pb2.StreamAssignmentsResponse
RECONCILE_EVERY = 6          # power-sync rounds between leftover sweeps

# task_state's step (nimbus.states) -> the operation that does it.
STEPS = {
    "build": build.build,
    "recover": build.recover,
    "delete": delete.delete,
    "stop": power.stop,
    "start": power.start,
    "reboot": power.reboot,
    "resume_guest": power.resume_guest,   # not a task state's: started on the first sync
    "resize": resize.run,                 # the host's part of a move (resize.py)
}


class ComputeAgent:
    """The host's controller: the conductor's assignment stream is its
    informer; each server's task_state names a step (nimbus.states), run
    here as one task per server; a step that fails is tried again after a
    per-server exponential backoff with jitter, which a success resets."""

    def __init__(self, host: str, driver: LibvirtDriver, backend: Backend,
                 tracker: ResourceTracker, conductor: conductor_pb2_grpc.ConductorServiceStub,
                 api: compute_pb2_grpc.ComputeServiceStub, metadata, node: records_pb2.NodeRecord):
        self.host = host
        self.driver = driver
        self.backend = backend
        # Kernels and ramdisks are cached locally whatever the disk backend.
        self.backend_cache = getattr(backend, "cache", None) or ImageCache(
            os.path.join(driver.instances_path, "_base"))
        self.tracker = tracker
        self.client = ConductorClient(host, conductor, api, metadata)
        self.node = node
        self.servers: dict[str, C.Server] = {}
        self.revisions: dict[str, int] = {}   # etcd mod_revision of self.servers[id]
        self.contexts: dict[str, records_pb2.MigrationContext] = {}   # servers moving
        # Moving servers deleted while a step of theirs ran here: that step
        # may still write files (a destination fetching disks), so our copy
        # is removed when it ends.
        self._clean_after_step: set[str] = set()
        self.build_inputs: dict[str, build.BuildInputs] = {}
        self.force_config_drive = False
        self.power_sync_interval = 10.0
        self.shutdown_timeout = 60.0           # a graceful stop's wait before a hard one
        self.resume_guests_state_on_host_boot = False
        self.synced = asyncio.Event()
        self.backoff = backoff.PerKey()
        self._work: dict[str, asyncio.Task] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self.metrics = metrics.ControllerMetrics(
            "agent", lambda: len(self._work.keys() | self._retries.keys()))
        self._side: set[asyncio.Task] = set()
        self.volume_work: set[tuple] = set()   # volume attaches/detaches in flight
        self.server_volumes: dict[str, list] = {}   # InstanceVolumes from the stream
        self.volume_news = asyncio.Event()          # set (and replaced) when they change
        self.volume_timeout = 180.0   # a build's wait for its volumes (Nova's 60 x 3 s)
        self._started_at: dict[str, int] = {}   # the revision each running step started from
        self.log = log.get("nimbus.agent").bind(host=host)

    # ---- connection loops ------------------------------------------------

    async def run(self) -> None:
        self.metrics.start()
        try:
            await asyncio.gather(self._report_forever(), self._stream_forever(),
                                 self._sync_power_forever())
        finally:
            self.metrics.stop()
            # Stopping: work in flight stops too (a restart's replay finishes
            # or reschedules it), before the driver closes.
            for handle in self._retries.values():
                handle.cancel()
            work = [*self._work.values(), *self._side]
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)

    async def _sync_power_forever(self) -> None:
        await self.synced.wait()
        rounds = 0
        while True:
            await asyncio.sleep(self.power_sync_interval)
            rounds += 1
            try:
                await power.sync_power_states(self)
                if rounds % RECONCILE_EVERY == 0:
                    await self._reconcile_domains()
            except (grpc.aio.AioRpcError, OSError) as exc:
                self.log.warning("power sync failed", error=str(exc))

    async def _report_forever(self) -> None:
        lease = 0
        attempt = 0
        while True:
            try:
                resp = await self.client.conductor.ReportNode(
                    conductor_pb2.ReportNodeRequest(node=self.node, lease_id=lease),
                    metadata=self.client.metadata, timeout=10)
                lease = resp.lease_id
                attempt = 0
                await asyncio.sleep(max(0.5, resp.ttl_seconds / 3))
            except grpc.aio.AioRpcError as exc:
                self.log.warning("node report failed", code=exc.code().name)
                await asyncio.sleep(backoff.delay(attempt, base=0.2, cap=1.0))
                attempt += 1

    async def _stream_forever(self) -> None:
        attempt = 0
        while True:
            try:
                call = self.client.conductor.StreamAssignments(
                    conductor_pb2.StreamAssignmentsRequest(host=self.host),
                    metadata=self.client.metadata)
                seen: set[str] = set()
                first = True
                async for event in call:
                    attempt = 0
                    if event.type == Event.EVENT_TYPE_SYNCED:
                        # Anything we knew that the fresh list lacks is gone.
                        for gone in set(self.servers) - seen:
                            self._forget(gone)
                        if first:
                            first = False
                            await self._reconcile_domains()
                            if self.resume_guests_state_on_host_boot:
                                await power.resume_guests(self)
                            self.synced.set()
                        seen = set()
                    elif event.type == Event.EVENT_TYPE_CONSOLE_REQUEST:
                        self._spawn(power.answer_console(self, event.console))
                    elif event.type == Event.EVENT_TYPE_DISK_REQUEST:
                        self._spawn(resize.push_disks(self, event.disk_request))
                    elif event.type == Event.EVENT_TYPE_DELETED:
                        moving = event.server.id in self.contexts
                        self._forget(event.server.id)
                        if moving and self.busy(event.server.id):
                            self._clean_after_step.add(event.server.id)
                        elif moving:
                            # The other host of a move finished the delete: our copy goes too.
                            self._spawn(delete.cleanup(self, event.server.id))
                    else:
                        seen.add(event.server.id)
                        if event.user_data or event.public_keys or event.personality:
                            self.build_inputs[event.server.id] = build.BuildInputs(
                                event.user_data, dict(event.public_keys),
                                [(f.path, f.contents) for f in event.personality])
                        ctx = (event.migration_context if event.HasField("migration_context")
                               else None)
                        if self.learn(event.server, event.revision, ctx):
                            volumes.learn(self, event.server.id, event.volumes)
                            self._on_server(event.server)
                            if event.volumes and event.server.host == self.host:
                                volumes.on_event(self, event.server, event.volumes)
            except grpc.aio.AioRpcError as exc:
                self.log.warning("assignment stream broken, reconnecting", code=exc.code().name)
            await asyncio.sleep(backoff.delay(attempt, base=0.2, cap=5.0))
            attempt += 1

    async def _reconcile_domains(self) -> None:
        """Domains and instance dirs without a server on this host are
        leftovers (the server was deleted while this host was down): remove
        them, disks included."""
        leftovers = await self.driver.instance_ids() - set(self.servers)
        if os.path.isdir(self.driver.instances_path):
            # <uuid> and a move's source copy <uuid>_resize (cleanup takes both)
            leftovers |= {name.removesuffix("_resize") for name in os.listdir(self.driver.instances_path)
                          if len(name.removesuffix("_resize")) == 36}
            leftovers -= set(self.servers)
        for instance_id in leftovers - set(self._work):
            self.log.info("removing leftover instance", instance_id=instance_id)
            await delete.cleanup(self, instance_id)
        # The tracker counts exactly the servers this host has.
        for instance_id in set(self.tracker.claims) - set(self.servers) - set(self._work):
            self.tracker.drop(instance_id)

    # ---- what we know -------------------------------------------------------

    def _forget(self, instance_id: str) -> None:
        for table in (self.servers, self.revisions, self.build_inputs, self.contexts,
                      self.server_volumes):
            table.pop(instance_id, None)
        self.backoff.success(instance_id)

    def learn(self, server: C.Server, revision: int, context=None) -> bool:
        """Keep the newest state of a server (and its migration context, from
        the stream or a move's answer); False for an older one (a stream
        event that lost the race with our own update's answer)."""
        if revision < self.revisions.get(server.id, 0):
            return False
        self.revisions[server.id] = revision
        if context is not None:
            self.contexts[server.id] = context
        elif revision and server.task_state not in states.RESIZE_TASKS and (
                server.vm_state != C.VM_STATE_RESIZED) and (
                server.task_state != C.TASK_STATE_DELETING):
            # The move is over (or never was). A moving server being deleted
            # keeps it: this host still holds a part of it until the record goes.
            self.contexts.pop(server.id, None)
        if self.ours(server):
            self.servers[server.id] = server
        return True

    def ours(self, server: C.Server) -> bool:
        """On this host, or moving from or to it."""
        ctx = self.contexts.get(server.id)
        return server.host == self.host or (
            ctx is not None and self.host in (ctx.source_host, ctx.dest_host))

    def busy(self, instance_id: str) -> bool:
        return instance_id in self._work

    async def update(self, server_id: str, expected: list[int], **fields) -> C.Server:
        """Report a state change through the conductor and keep its answer."""
        resp = await self.client.update(server_id, expected, **fields)
        self.learn(resp.server, resp.revision)
        return resp.server

    # ---- dispatch ---------------------------------------------------------

    def _on_server(self, server: C.Server) -> None:
        if not self.ours(server):
            self._forget(server.id)   # rescheduled or moved elsewhere
            return
        if server.task_state == C.TASK_STATE_DELETING and server.host != self.host:
            # The other host of a move: the server's host deletes and finishes;
            # our copy goes when the record does (the DELETED event), after
            # any step of ours still writing it.
            return
        if server.vm_state != C.VM_STATE_BUILDING and server.host == self.host:
            self.tracker.claim(server, force=True)   # runs here: count it
        running = self._work.get(server.id)
        step = states.agent_step(server, running.get_name() if running is not None else None)
        if step is None:
            return
        self.start_step(server, step, running)

    def start_step(self, server: C.Server, step: str, running: asyncio.Task | None = None) -> None:
        retry = self._retries.pop(server.id, None)
        if retry is not None:
            retry.cancel()   # news about the server: act on it now
        task = asyncio.create_task(self._run(step, server, running), name=step)
        self._work[server.id] = task
        self._started_at[server.id] = self.revisions.get(server.id, 0)
        task.add_done_callback(lambda t: self._done(server.id, t))

    def _spawn(self, coro) -> None:
        """Side work not tied to a server's task (a console answer)."""
        task = asyncio.create_task(coro)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _run(self, step: str, server: C.Server, previous: asyncio.Task | None) -> None:
        if previous is not None:
            # The step replaces work in flight (a delete overtaking a build):
            # that work notices at its next update and stops; wait for it.
            await asyncio.gather(previous, return_exceptions=True)
        await STEPS[step](self, server)

    def _done(self, instance_id: str, task: asyncio.Task) -> None:
        if self._work.get(instance_id) is not task:
            return
        del self._work[instance_id]
        started_at = self._started_at.pop(instance_id, 0)
        if instance_id in self._clean_after_step:
            self._clean_after_step.discard(instance_id)
            self._spawn(delete.cleanup(self, instance_id))
            return
        if task.cancelled():
            return
        if task.exception() is None:
            self.backoff.success(instance_id)
            if self.revisions.get(instance_id, 0) != started_at:
                self._redispatch(instance_id)   # it changed meanwhile (not the same step again)
            return
        delay = self.backoff.failure(instance_id)
        self.log.error("step failed, trying again later", instance_id=instance_id,
                       step=task.get_name(), retry_in=round(delay, 3), exc_info=task.exception())
        self.metrics.retried()
        self._retries[instance_id] = asyncio.get_running_loop().call_later(
            delay, self._redispatch, instance_id)

    def _redispatch(self, instance_id: str) -> None:
        """Level-triggered: whatever the server's latest state asks for now
        (it may have changed while the step ran) is acted on."""
        self._retries.pop(instance_id, None)
        latest = self.servers.get(instance_id)
        if latest is not None:
            self._on_server(latest)
