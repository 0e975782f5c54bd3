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
import dataclasses
import os
import shutil

import grpc
from google.protobuf import field_mask_pb2

from nimbus import ipam, log, states
from nimbus.compute.v1 import compute_pb2, compute_pb2_grpc
from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
from nimbus.imagebackend import Backend, DiskSource, ImageError, qemu_img
from nimbus.imagebackend.local import ImageCache
from nimbus.virt import configdrive
from nimbus.services.agent.tracker import ResourceTracker
from nimbus.state.v1 import records_pb2
from nimbus.store.store import now
from nimbus.virt.driver import (GuestConfig, GuestDisk, LibvirtDriver, SpawnError, Vif,
                                disk_mapping)

C = compute_pb2
Event = conductor_pb2.StreamAssignmentsResponse


# The conductor went away mid-call (restart, failover): try again.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.CANCELLED)
RETRY_SECONDS = 20.0
RECONCILE_EVERY = 6          # power-sync rounds between leftover sweeps


@dataclasses.dataclass
class BuildInputs:
    """What the config drive needs beyond the public Server (secrets: never logged)."""
    user_data: bytes = b""
    public_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    files: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)


class Lost(Exception):
    """Another actor changed the server (deleted it, most often): stop."""


class ComputeAgent:
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
        self.conductor = conductor
        self.api = api
        self.metadata = metadata
        self.node = node
        self.servers: dict[str, C.Server] = {}
        self.revisions: dict[str, int] = {}   # etcd mod_revision of self.servers[id]
        self.build_inputs: dict[str, BuildInputs] = {}
        self.force_config_drive = False
        self.power_sync_interval = 10.0
        self.synced = asyncio.Event()
        self._work: dict[str, asyncio.Task] = {}
        self._images: dict[str, C.Image] = {}
        self.log = log.get("nimbus.agent").bind(host=host)

    # ---- connection loops ------------------------------------------------

    async def run(self) -> None:
        try:
            await asyncio.gather(self._report_forever(), self._stream_forever(),
                                 self._sync_power_forever())
        finally:
            # Stopping: builds and deletes in flight stop too (a restart's
            # replay finishes or reschedules them), before the driver closes.
            work = list(self._work.values())
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
                await self.sync_power_states()
                if rounds % RECONCILE_EVERY == 0:
                    await self._reconcile_domains()
            except (grpc.aio.AioRpcError, OSError) as exc:
                self.log.warning("power sync failed", error=str(exc))

    async def sync_power_states(self) -> None:
        """Nova's _sync_instance_power_state: the hypervisor is the truth for
        the power state of servers nobody is working on. An ACTIVE server
        whose domain stopped, crashed or vanished behind our back becomes
        STOPPED (Nova stops it through its API); the next start is the
        user's call."""
        # Pick the idle servers before asking libvirt: a build that finishes
        # while we wait must not be judged by a snapshot older than its domain.
        idle = {sid: self.revisions.get(sid) for sid, s in self.servers.items()
                if sid not in self._work and s.task_state == C.TASK_STATE_UNSPECIFIED
                and s.vm_state in (C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED, C.VM_STATE_PAUSED)}
        actual = await self.driver.power_states()
        for sid, revision in idle.items():
            server = self.servers.get(sid)
            if server is None or sid in self._work or self.revisions.get(sid) != revision:
                continue   # changed while we looked: next round
            power = actual.get(sid, C.POWER_STATE_UNSPECIFIED)
            if power == server.power_state:
                continue
            fields = {"power_state": power}
            if server.vm_state == C.VM_STATE_ACTIVE and power in (
                    C.POWER_STATE_SHUTDOWN, C.POWER_STATE_CRASHED, C.POWER_STATE_UNSPECIFIED):
                fields["vm_state"] = C.VM_STATE_STOPPED
            self.log.info("power state changed behind our back", instance_id=sid,
                          power_state=C.PowerState.Name(power))
            try:
                await self._update(sid, [C.TASK_STATE_UNSPECIFIED], **fields)
            except Lost:
                pass   # a task started meanwhile: it owns the server now

    async def _report_forever(self) -> None:
        lease = 0
        while True:
            try:
                resp = await self.conductor.ReportNode(
                    conductor_pb2.ReportNodeRequest(node=self.node, lease_id=lease),
                    metadata=self.metadata, timeout=10)
                lease = resp.lease_id
                await asyncio.sleep(max(0.5, resp.ttl_seconds / 3))
            except grpc.aio.AioRpcError as exc:
                self.log.warning("node report failed", code=exc.code().name)
                await asyncio.sleep(1)

    async def _stream_forever(self) -> None:
        backoff = 0.2
        while True:
            try:
                call = self.conductor.StreamAssignments(
                    conductor_pb2.StreamAssignmentsRequest(host=self.host), metadata=self.metadata)
                seen: set[str] = set()
                first = True
                async for event in call:
                    backoff = 0.2
                    if event.type == Event.EVENT_TYPE_SYNCED:
                        # Anything we knew that the fresh list lacks is gone.
                        for gone in set(self.servers) - seen:
                            self._forget(gone)
                        if first:
                            first = False
                            await self._reconcile_domains()
                            self.synced.set()
                        seen = set()
                    elif event.type == Event.EVENT_TYPE_DELETED:
                        self._forget(event.server.id)
                    else:
                        seen.add(event.server.id)
                        if event.user_data or event.public_keys or event.personality:
                            self.build_inputs[event.server.id] = BuildInputs(
                                event.user_data, dict(event.public_keys),
                                [(f.path, f.contents) for f in event.personality])
                        if self._learn(event.server, event.revision):
                            self._on_server(event.server)
            except grpc.aio.AioRpcError as exc:
                self.log.warning("assignment stream broken, reconnecting", code=exc.code().name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _reconcile_domains(self) -> None:
        """Domains and instance dirs without a server on this host are
        leftovers (the server was deleted while this host was down): remove
        them, disks included."""
        leftovers = await self.driver.instance_ids() - set(self.servers)
        if os.path.isdir(self.driver.instances_path):
            leftovers |= {name for name in os.listdir(self.driver.instances_path)
                          if len(name) == 36 and name not in self.servers}
        for instance_id in leftovers - set(self._work):
            self.log.info("removing leftover instance", instance_id=instance_id)
            await self._cleanup(instance_id)
        # The tracker counts exactly the servers this host has.
        for instance_id in set(self.tracker.claims) - set(self.servers) - set(self._work):
            self.tracker.drop(instance_id)

    # ---- dispatch ---------------------------------------------------------

    def _forget(self, instance_id: str) -> None:
        for table in (self.servers, self.revisions, self.build_inputs):
            table.pop(instance_id, None)

    def _learn(self, server: C.Server, revision: int) -> bool:
        """Keep the newest state of a server; False for an older one (a
        stream event that lost the race with our own update's answer)."""
        if revision < self.revisions.get(server.id, 0):
            return False
        self.revisions[server.id] = revision
        if server.host == self.host:
            self.servers[server.id] = server
        return True

    def _on_server(self, server: C.Server) -> None:
        if server.host != self.host:
            self._forget(server.id)   # rescheduled elsewhere
            return
        if server.vm_state != C.VM_STATE_BUILDING:
            self.tracker.claim(server, force=True)   # runs here: count it
        running = self._work.get(server.id)
        step = states.agent_step(server, running.get_name() if running is not None else None)
        if step == "delete":
            self._start(server.id, "delete", self._delete(server, running))
        elif step == "build":
            self._start(server.id, "build",
                        self._build(server, self.build_inputs.get(server.id, BuildInputs())))
        elif step == "recover":
            self._start(server.id, "recover", self._recover(server))

    def _start(self, instance_id: str, name: str, coro) -> None:
        task = asyncio.create_task(coro, name=name)
        self._work[instance_id] = task
        task.add_done_callback(lambda t: self._done(instance_id, t))

    def _done(self, instance_id: str, task: asyncio.Task) -> None:
        if self._work.get(instance_id) is not task:
            return
        del self._work[instance_id]
        if task.cancelled():
            return
        if task.exception() is not None:
            self.log.error("task failed", instance_id=instance_id, task=task.get_name(),
                           exc_info=task.exception())
        # Level-triggered: whatever the server's latest state asks for now
        # (it may have changed while the task ran) is acted on.
        latest = self.servers.get(instance_id)
        if latest is not None:
            self._on_server(latest)

    # ---- conductor calls ----------------------------------------------------

    async def _call(self, method, request, before_retry=None):
        """A conductor RPC, retried while the conductor is away (a restart, a
        failover) for RETRY_SECONDS. A refusal (FAILED_PRECONDITION,
        NOT_FOUND: another actor changed the server) raises Lost."""
        deadline = asyncio.get_running_loop().time() + RETRY_SECONDS
        while True:
            try:
                return await method(request, metadata=self.metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                    raise Lost(exc.details()) from None
                if exc.code() not in RETRYABLE or asyncio.get_running_loop().time() > deadline:
                    raise
            if before_retry is not None:
                before_retry()
            await asyncio.sleep(0.2)

    async def _update(self, server_id: str, expected: list[int], **fields) -> C.Server:
        """Report a state change. A retry also accepts the target task state,
        since the first try may have landed unanswered."""
        request = conductor_pb2.UpdateInstanceRequest(
            host=self.host, server=C.Server(id=server_id, **fields),
            update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
            expected_task_states=expected)

        def accept_target() -> None:
            if "task_state" in fields and fields["task_state"] not in request.expected_task_states:
                request.expected_task_states.append(fields["task_state"])
        resp = await self._call(self.conductor.UpdateInstance, request, accept_target)
        self._learn(resp.server, resp.revision)
        return resp.server

    async def _allocate_networks(self, instance_id: str):
        """The server's VIFs (NETWORKING -> BLOCK_DEVICE_MAPPING), or None when
        the conductor could not get its ports and put it in ERROR."""
        request = conductor_pb2.AllocateNetworksRequest(host=self.host, instance_id=instance_id)
        try:
            resp = await self.conductor.AllocateNetworks(request, metadata=self.metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise Lost(exc.details()) from None
            raise
        self._learn(resp.server, resp.revision)
        if resp.HasField("fault"):
            self.log.info("network allocation failed", instance_id=instance_id,
                          reason=resp.fault.message)
            return None
        return list(resp.vifs)

    async def _check_server_group(self, instance_id: str) -> str:
        """The late policy check (Nova's _validate_instance_group_policy):
        the violation, or '' when building here is fine."""
        try:
            await self.conductor.CheckServerGroup(conductor_pb2.CheckServerGroupRequest(
                host=self.host, instance_id=instance_id), metadata=self.metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return exc.details()
            raise
        return ""

    async def _give_back(self, server: C.Server, message: str, expected: list[int]) -> None:
        fault = C.Fault(code=500, message=message, created_at=now())
        await self._retrying(self.conductor.RescheduleInstance, conductor_pb2.RescheduleInstanceRequest(
            host=self.host, instance_id=server.id, fault=fault, expected_task_states=expected))

    async def _retrying(self, method, request) -> None:
        """A conductor RPC whose refusal means 'already done or not ours any
        more' (both fine). Giving up on an absent conductor leaves the server
        as it is: the stream's replay after the reconnect brings it back to
        us (level-triggered)."""
        try:
            await self._call(method, request)
        except Lost:
            pass

    # ---- build ----------------------------------------------------------------

    async def _image(self, image_id: str) -> C.Image:
        if image_id not in self._images:   # images are immutable once active
            resp = await self.api.GetImage(C.GetImageRequest(ref=image_id),
                                           metadata=self.metadata, timeout=30)
            self._images[image_id] = resp.image
        return self._images[image_id]

    def _download(self, image_id: str):
        async def chunks():
            async for part in self.api.DownloadImage(C.DownloadImageRequest(id=image_id),
                                                     metadata=self.metadata):
                yield part.chunk
        return chunks

    async def _build(self, server: C.Server, inputs: "BuildInputs") -> None:
        sid = server.id
        if not self.tracker.claim(server):
            self.log.info("claim failed on the node, rescheduling", instance_id=sid)
            await self._give_back(server, f"Insufficient compute resources on {self.host}",
                                  [C.TASK_STATE_SCHEDULING])
            return
        stage = C.TASK_STATE_SCHEDULING
        try:
            if server.server_group:
                violation = await self._check_server_group(sid)
                if violation:
                    self.tracker.drop(sid)
                    self.log.info("server group policy violated, rescheduling", instance_id=sid)
                    await self._give_back(server, f"Build of instance {sid} was re-scheduled: "
                                                  f"{violation}", [C.TASK_STATE_SCHEDULING])
                    return
            await self._update(sid, [C.TASK_STATE_SCHEDULING, C.TASK_STATE_UNSPECIFIED],
                               vm_state=C.VM_STATE_BUILDING, task_state=C.TASK_STATE_NETWORKING)
            stage = C.TASK_STATE_NETWORKING
            vifs = await self._allocate_networks(sid)
            if vifs is None:   # no ports to be had: the conductor put it in ERROR
                await self._cleanup(sid)
                return
            stage = C.TASK_STATE_BLOCK_DEVICE_MAPPING
            await self._update(sid, [stage], task_state=C.TASK_STATE_SPAWNING)
            stage = C.TASK_STATE_SPAWNING
            await self._spawn(server, inputs, vifs)
            await self._update(sid, [stage], vm_state=C.VM_STATE_ACTIVE,
                               task_state=C.TASK_STATE_UNSPECIFIED,
                               power_state=C.POWER_STATE_RUNNING, launched_at=now())
            self.log.info("server active", instance_id=sid)
        except Lost as exc:
            # Deleted (or otherwise taken) mid-build: undo; the delete path
            # (if any) finishes the job.
            self.log.info("build stopped", instance_id=sid, reason=str(exc))
            await self._cleanup(sid)
        except Exception as exc:  # noqa: BLE001 - any failure: clean up, give back, say why
            if isinstance(exc, grpc.aio.AioRpcError):
                message = exc.details()
            elif isinstance(exc, (SpawnError, ImageError, OSError)):
                message = str(exc)
            else:   # a bug: keep the type so the fault is useful
                message = f"{type(exc).__name__}: {exc}"
                self.log.error("build crashed", instance_id=sid, exc_info=exc)
            self.log.warning("build failed, rescheduling", instance_id=sid, error=message)
            await self._cleanup(sid)
            await self._give_back(server, f"Build of instance {sid} failed: {message}", [stage])

    async def _fetch_to_instance(self, image_id: str, dest: str) -> str:
        """A kernel or ramdisk: cached in _base, copied into the instance dir
        (as Nova does, so the domain never points into the shared cache)."""
        cached, _ = await self.backend_cache.fetch(image_id, self._download(image_id), inspect=False)
        shutil.copyfile(cached, dest)
        return dest

    async def _spawn(self, server: C.Server, inputs: "BuildInputs", vifs) -> None:
        image = await self._image(server.image_ref)
        inst_dir = self.driver.instance_dir(server.id)
        os.makedirs(inst_dir, exist_ok=True)
        flavor = server.flavor
        use_config_drive = server.config_drive or self.force_config_drive
        mapping = disk_mapping(flavor, use_config_drive)
        root = await self.backend.create_root_disk(server.id, inst_dir, image.id, image.disk_format,
                                                   self._download(image.id), flavor.disk_gb)
        disks = [GuestDisk(*mapping["disk"], root)]
        for name, size in (("disk.eph0", f"{flavor.ephemeral_gb}G"), ("disk.swap", f"{flavor.swap_mb}M")):
            if name in mapping:
                path = os.path.join(inst_dir, name)
                await qemu_img.run("create", "-q", "-f", "qcow2", path, size)
                disks.append(GuestDisk(*mapping[name], DiskSource("file", "qcow2", path=path)))
        if use_config_drive:
            iso = os.path.join(inst_dir, "disk.config")
            await configdrive.build(iso, server, user_data=inputs.user_data,
                                    public_keys=inputs.public_keys, files=inputs.files,
                                    availability_zone=server.availability_zone or "nova",
                                    network_data=ipam.network_data_for_vifs(vifs))
            disks.append(GuestDisk(*mapping["disk.config"],
                                   await self.backend.import_config_drive(server.id, iso)))
        kernel = initrd = cmdline = ""
        props = image.properties
        if props.get("kernel_id"):
            kernel = await self._fetch_to_instance(props["kernel_id"], os.path.join(inst_dir, "kernel"))
            if props.get("ramdisk_id"):
                initrd = await self._fetch_to_instance(props["ramdisk_id"],
                                                       os.path.join(inst_dir, "ramdisk"))
            cmdline = props.get("os_command_line", "console=ttyS0 root=/dev/vda")
        cfg = GuestConfig(server=server, virt_type=self.driver.virt_type, disks=disks,
                          console_log=os.path.join(inst_dir, "console.log"),
                          vifs=[Vif(v.bridge, v.mac_address) for v in vifs],
                          kernel=kernel, initrd=initrd, cmdline=cmdline)
        await self.driver.spawn(cfg, plug_vifs=self.driver.plug_vifs)

    async def _cleanup(self, instance_id: str) -> None:
        """Undo a build or finish a delete: domain, disks (local or RBD,
        config drive included), instance dir, claim. Idempotent."""
        inst_dir = self.driver.instance_dir(instance_id)
        await self.driver.destroy(instance_id)
        await self.backend.remove_disks(instance_id, inst_dir)
        shutil.rmtree(inst_dir, ignore_errors=True)
        self.tracker.drop(instance_id)

    async def _recover(self, server: C.Server) -> None:
        self.log.info("build interrupted by a restart, rescheduling", instance_id=server.id)
        await self._cleanup(server.id)
        await self._give_back(server, f"compute host {self.host} restarted during the build",
                              [server.task_state])

    # ---- delete ----------------------------------------------------------------

    async def _delete(self, server: C.Server, running: asyncio.Task | None) -> None:
        if running is not None:
            # A build in flight notices DELETING at its next update and cleans up.
            await asyncio.gather(running, return_exceptions=True)
        await self._cleanup(server.id)
        await self._retrying(self.conductor.FinishDeleteInstance,
                             conductor_pb2.FinishDeleteInstanceRequest(host=self.host,
                                                                       instance_id=server.id))
        self.log.info("server deleted", instance_id=server.id)
