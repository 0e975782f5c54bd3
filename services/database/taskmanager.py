"""The task manager (trove-taskmanager's create_instance and
delete_instance), a leader-elected controller over db/instances/.

A build goes stage by stage, each recorded by CAS so a restarted leader
resumes where the last one stopped:

    ACCEPTED          security group (datastore port), server group (locality),
                      guest credential (hash in guests/<id>), CreateServer with
                      the guest's config as a personality file on the config drive
    SERVER_REQUESTED  WatchServers until ACTIVE (ERROR: BUILDING_ERROR_SERVER)
    SERVER_ACTIVE     (simulation: start the local guest) wait for the guest's
                      stream, send prepare
    PREPARE_SENT      the guest's HEALTHY heartbeat ends the build (guests.py)

Past `deadline` (created + usage_timeout) a build fails visibly:
BUILDING_ERROR_SERVER before the server is up, BUILDING_ERROR_TIMEOUT_GA
after. DELETING, in any stage, interrupts the build and removes the server,
the groups, the guest (process and data), the records and the quota usage.
"""

from __future__ import annotations

import asyncio
import json

import grpc

from nimbus import errors, log
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import security_groups_pb2 as SG
from nimbus.compute.v1 import server_groups_pb2 as SVG
from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import guest_pb2 as G
from nimbus.database.v1 import records_pb2 as R
from nimbus.services.database import quotas, status
from nimbus.services.database.compute import ComputeClient
from nimbus.services.database.controller import Controller
from nimbus.services.database.guests import GuestHub, new_credential
from nimbus.services.database.validation import LOCALITIES
from nimbus.services.guestagent.datastore import REPLICATION_PREFIX
from nimbus.services.guestagent.main import CONFIG_PATH, PLUGINS
from nimbus.store import keys
from nimbus.verifiers import generate_password, verifier
from nimbus.store.informer import DELETED, Informer
from nimbus.store.store import Store, now
from nimbus.watch import absent_unless_read, until

_log = log.get("nimbus.database.taskmanager")


class BuildFailed(Exception):
    def __init__(self, task: int, message: str):
        super().__init__(message)
        self.task = task


def remaining(rec: R.InstanceRecord) -> float:
    return rec.deadline.ToNanoseconds() / 1e9 - now().ToNanoseconds() / 1e9


class TaskManager:
    def __init__(self, store: Store, instances: Informer, compute: ComputeClient, hub: GuestHub,
                 control_address: str, local_guests=None, control_ca: str = ""):
        self.store = store
        self.instances = instances
        self.compute = compute
        self.hub = hub
        self.control_address = control_address
        # PEM of the CA that verifies DatabaseService (TLS on): the guest's trust.
        self.control_ca = control_ca
        self.local = local_guests
        self.controller = Controller("taskmanager", self.reconcile)
        self.resume_guests = False   # resume_guests_state_on_host_boot (local guests)
        self.prepared: set[str] = set()   # guests that answered prepare (this leader's term)

    # ---- leading --------------------------------------------------------------

    def _on_change(self, kind, key, new, old) -> None:
        if kind == DELETED:
            return
        if new.msg.instance.task_status == D.TASK_STATUS_DELETING:
            self.controller.cancel(key)
        self.controller.enqueue(key)

    async def lead(self) -> None:
        await self.instances.synced.wait()
        self.instances.add_listener(self._on_change)
        try:
            if self.resume_guests:
                self._resume_guests()
            for key in list(self.instances.items):
                self.controller.enqueue(key)
            await asyncio.Event().wait()
        finally:
            self.instances.remove_listener(self._on_change)
            await self.controller.stop()

    def _resume_guests(self) -> None:
        """resume_guests_state_on_host_boot for local guests: after `make run`
        stopped them (or the machine rebooted), every built instance's guest
        starts again, and its agent starts the prepared datastore (guestagent
        resume). Only when leading starts: a guest that dies later stays down
        and shows SHUTDOWN, as a crashed VM does."""
        if self.local is None:
            return
        for v in list(self.instances.items.values()):
            rec = v.msg
            if rec.stage == R.STAGE_DONE and rec.guest_id and \
                    rec.instance.task_status != D.TASK_STATUS_DELETING:
                try:
                    self.local.ensure_running(rec.guest_id)
                except (OSError, RuntimeError) as exc:
                    _log.warning("guest not resumed", guest_id=rec.guest_id, error=str(exc))

    # ---- one instance -----------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        got = await self.store.get(key, R.InstanceRecord)
        if got is None:
            return None
        rec = got.msg
        if rec.instance.task_status == D.TASK_STATUS_DELETING:
            await self.delete(got)
            return None
        if rec.instance.task_status == D.TASK_STATUS_RESIZING:
            await self.resize(rec)
            return None
        if rec.instance.task_status != D.TASK_STATUS_BUILDING:
            return None
        try:
            return await self.build(got)
        except BuildFailed as exc:
            await self.fail(rec.instance.id, exc.task, str(exc))
            return None

    async def save(self, instance_id: str, mutate, also=None) -> R.InstanceRecord:
        """CAS on a building instance; a delete that came first wins."""
        def guarded(rec: R.InstanceRecord):
            if rec.instance.task_status != D.TASK_STATUS_BUILDING:
                raise errors.FailedPrecondition("no longer building")
            mutate(rec)
            rec.instance.updated_at.CopyFrom(now())
            status.refresh(rec.instance)
            return also
        return (await self.store.update(keys.db_instance(instance_id), R.InstanceRecord, guarded)).msg

    async def fail(self, instance_id: str, task: int, message: str) -> None:
        _log.warning("build failed", instance_id=instance_id, task=D.TaskStatus.Name(task),
                     fault=message)

        def mutate(rec):
            rec.instance.task_status = task
            rec.instance.fault.CopyFrom(D.Fault(message=message, created_at=now()))
        try:
            await self.save(instance_id, mutate)
        except (errors.FailedPrecondition, errors.NotFound):
            pass

    async def build(self, got) -> float | None:
        rec = got.msg
        left = remaining(rec)
        if left <= 0:
            if rec.stage >= R.STAGE_SERVER_ACTIVE:
                raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA,
                                  "the guest agent did not report HEALTHY within usage_timeout")
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_SERVER,
                              "the server did not become ACTIVE within usage_timeout")
        if rec.stage == R.STAGE_ACCEPTED:
            rec = await self.create_server(rec)
        if rec.stage == R.STAGE_SERVER_REQUESTED:
            rec = await self.wait_server(rec, left)
        if rec.stage == R.STAGE_CLAIMED:
            await self.finish_claim(rec)
            return None
        if rec.stage in (R.STAGE_SERVER_ACTIVE, R.STAGE_PREPARE_SENT):
            await self.prepare(rec, remaining(rec))
        return max(0.05, remaining(rec)) if rec.stage != R.STAGE_DONE else None

    async def create_server(self, rec: R.InstanceRecord) -> R.InstanceRecord:
        inst = rec.instance
        port = PLUGINS[rec.manager].default_port
        if not inst.security_group_id:
            try:
                group = await self._security_group(f"trove-{inst.id}", port)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    raise
                raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_SEC_GROUP,
                                  f"security group: {exc.details()}") from None
            rec = await self.save(inst.id, lambda r: setattr(r.instance, "security_group_id", group))
        if inst.locality and not rec.instance.server_group_id:
            group = (await self._rpc(self.compute.server_groups.CreateServerGroup(
                SVG.CreateServerGroupRequest(name=f"trove-{inst.id}",
                                             policy=LOCALITIES[inst.locality]),
                metadata=self.compute.metadata))).server_group.id
            rec = await self.save(inst.id, lambda r: setattr(r.instance, "server_group_id", group))
        existing = await self._servers_named(rec.server_name)
        if existing:
            server_id = existing[0].id
        else:
            server_id = await self._boot(rec)
        return await self.save(inst.id, lambda r: (setattr(r.instance, "server_id", server_id),
                                                   setattr(r, "stage", R.STAGE_SERVER_REQUESTED)))

    async def _rpc(self, call):
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_SERVER,
                              f"{exc.code().name}: {exc.details()}") from None

    async def _security_group(self, name: str, port: int) -> str:
        sgs = self.compute.security_groups
        md = self.compute.metadata
        found = [g for g in (await sgs.ListSecurityGroups(SG.ListSecurityGroupsRequest(),
                                                          metadata=md)).security_groups
                 if g.name == name]
        group = found[0] if found else (await sgs.CreateSecurityGroup(
            SG.CreateSecurityGroupRequest(name=name, description="database port (trove)"),
            metadata=md)).security_group
        if not any(r.port_range_min == port for r in group.rules):
            await sgs.CreateSecurityGroupRule(SG.CreateSecurityGroupRuleRequest(
                security_group_id=group.id, direction=SG.SecurityGroupRule.DIRECTION_INGRESS,
                protocol=SG.SecurityGroupRule.PROTOCOL_TCP, port_range_min=port,
                port_range_max=port, remote_ip_prefix="0.0.0.0/0"), metadata=md)
        return group.id

    async def _servers_named(self, name: str) -> list[C.Server]:
        resp = await self.compute.compute.ListServers(C.ListServersRequest(name=name),
                                                      metadata=self.compute.metadata)
        return list(resp.servers)

    async def _boot(self, rec: R.InstanceRecord) -> str:
        """A fresh credential (only its hash in etcd), then the server with
        the guest's configuration on its config drive."""
        inst = rec.instance
        secret, digest = new_credential()
        await self.store.txn([], [self.store.put(keys.guest(rec.guest_id), R.GuestRecord(
            guest_id=rec.guest_id, instance_id=inst.id, project_id=inst.project_id,
            credential_sha256=digest))])
        guest_cfg = json.dumps({"guest_id": rec.guest_id, "manager": rec.manager,
                                "control_address": self.control_address,
                                "credential": secret}
                               | ({"control_ca": self.control_ca} if self.control_ca else {})
                               ).encode()
        files = [(CONFIG_PATH, guest_cfg)]
        metadata = {"trove_instance_id": inst.id, "trove_guest_id": rec.guest_id}
        if self.local is not None:
            self.local.write_config_drive(rec.guest_id, {"uuid": "", "name": rec.server_name,
                                                         "meta": metadata}, files)
        sg = await self.compute.security_groups.GetSecurityGroup(
            SG.GetSecurityGroupRequest(id=inst.security_group_id), metadata=self.compute.metadata)
        req = C.CreateServerRequest(
            name=rec.server_name, image_ref=rec.image, flavor_ref=inst.flavor_ref, config_drive=True,
            metadata=metadata, personality=[C.Personality(path=p, contents=d) for p, d in files],
            security_groups=[sg.security_group.name], availability_zone=inst.availability_zone,
            networks=[C.NetworkRequest(uuid=n) for n in inst.nics],
            description=f"database instance {inst.id}")
        if inst.server_group_id:
            req.scheduler_hints.group = inst.server_group_id
        return (await self._rpc(self.compute.compute.CreateServer(
            req, metadata=self.compute.metadata))).servers[0].id

    async def wait_server(self, rec: R.InstanceRecord, timeout: float) -> R.InstanceRecord:
        server = await self._watch_server(rec.instance.server_id, timeout, lambda s: s is None or (
            s.task_state == 0 and s.vm_state in (C.VM_STATE_ACTIVE, C.VM_STATE_ERROR)))
        if server is None:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_SERVER, "the server was deleted")
        if server.vm_state == C.VM_STATE_ERROR:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_SERVER,
                              f"server {server.id} failed: {server.fault.message}")
        return await self.save(rec.instance.id, lambda r: (
            setattr(r, "compute_host", server.host), setattr(r, "stage", R.STAGE_SERVER_ACTIVE)))

    async def _watch_server(self, server_id: str, timeout: float, predicate) -> C.Server | None:
        call = self.compute.compute.WatchServers(C.WatchServersRequest(id=server_id),
                                                 metadata=self.compute.metadata)
        gone = absent_unless_read(lambda: self.compute.compute.GetServer(
            C.GetServerRequest(id=server_id), metadata=self.compute.metadata))
        try:
            return await until(call, C.WatchServersResponse, "server", predicate, timeout, gone)
        except TimeoutError:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_SERVER,
                              "the server did not become ACTIVE within usage_timeout") from None
        except RuntimeError:
            raise errors.Unavailable("WatchServers ended") from None

    async def prepare(self, rec: R.InstanceRecord, timeout: float) -> None:
        if self.local is not None:
            self.local.ensure_running(rec.guest_id)
        try:
            await asyncio.wait_for(self.hub.event(rec.guest_id).wait(), max(0.01, timeout))
        except asyncio.TimeoutError:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA,
                              "the guest agent did not connect within usage_timeout") from None
        if rec.stage != R.STAGE_PREPARE_SENT:
            rec = await self.save(rec.instance.id, lambda r: setattr(r, "stage", R.STAGE_PREPARE_SENT))
        if rec.instance.service_status == D.SERVICE_STATUS_HEALTHY or rec.guest_id in self.prepared:
            return   # the HEALTHY heartbeat ends the build; prepare again only after a restart
        prepare = G.Prepare(manager=rec.manager, databases=rec.databases, users=rec.users,
                            volume_size_gb=rec.instance.volume.size_gb)
        if rec.restore_backup_id:
            source = await self.store.get(keys.db_backup(rec.restore_backup_id), R.BackupRecord)
            if source is None:
                raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_GUEST,
                                  f"backup {rec.restore_backup_id} was deleted before the restore")
            prepare.restore.CopyFrom(G.RestoreFrom(
                backup_id=source.msg.backup.id, checksum_sha256=source.msg.backup.checksum_sha256,
                size_bytes=source.msg.backup.size_bytes))
        if rec.instance.replica_of:
            prepare.replicate.CopyFrom(await self._replication_source(rec))
        result = await self.hub.call(rec.guest_id, timeout=max(1.0, remaining(rec)), prepare=prepare)
        if not result.ok:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_GUEST, f"prepare failed: {result.error}")
        self.prepared.add(rec.guest_id)

    async def finish_claim(self, rec: R.InstanceRecord) -> None:
        """A claimed warm-pool guest: its databases and users (prepare again,
        which is idempotent on a prepared guest), then ACTIVE."""
        result = await self.hub.call(rec.guest_id, prepare=G.Prepare(
            manager=rec.manager, databases=rec.databases, users=rec.users,
            volume_size_gb=rec.instance.volume.size_gb))
        if not result.ok:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_GUEST, f"prepare failed: {result.error}")
        await self.save(rec.instance.id, lambda r: (
            setattr(r.instance, "task_status", D.TASK_STATUS_NONE), setattr(r, "stage", R.STAGE_DONE)))

    async def _replication_source(self, rec: R.InstanceRecord) -> G.ReplicateFrom:
        """A fresh replication password for this attempt: its verifier to the
        source's guest, the password itself only to the replica's (never etcd)."""
        got = await self.store.get(keys.db_instance(rec.instance.replica_of), R.InstanceRecord)
        if got is None or got.msg.instance.status != status.READY:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_GUEST,
                              f"the source {rec.instance.replica_of} is not ACTIVE")
        source = got.msg
        password = generate_password()
        user = f"{REPLICATION_PREFIX}_{rec.instance.id.replace('-', '')[:12]}"
        result = await self.hub.call(source.guest_id, enable_replication=G.GuestUser(
            name=user, host="%", verifier=verifier(source.manager, password)))
        if not result.ok:
            raise BuildFailed(D.TASK_STATUS_BUILDING_ERROR_GUEST,
                              f"the source refused replication: {result.error}")
        return G.ReplicateFrom(host=source.instance.host, port=source.instance.port,
                               user=user, password=password)

    # ---- resize (Trove's resize_flavor) -------------------------------------------

    async def resize(self, rec: R.InstanceRecord) -> None:
        """ResizeServer, wait for RESIZED, confirm once the guest is HEALTHY
        (revert if it is not within a minute); level-triggered: a restarted
        leader looks at the server and goes on from where it stands."""
        inst, target = rec.instance, rec.resize_flavor_ref
        api, md = self.compute.compute, self.compute.metadata
        server = (await api.GetServer(C.GetServerRequest(id=inst.server_id), metadata=md)).server
        settled = lambda s: s is None or (s.task_state == 0 and s.vm_state in (  # noqa: E731
            C.VM_STATE_ACTIVE, C.VM_STATE_RESIZED, C.VM_STATE_ERROR, C.VM_STATE_STOPPED))
        try:
            if server.vm_state != C.VM_STATE_RESIZED and server.flavor_ref != target:
                await api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref=target), metadata=md)
                server = await self._watch_server(server.id, 600, lambda s: settled(s) and (
                    s is None or s.vm_state != C.VM_STATE_ACTIVE or s.flavor_ref == target))
            if server is not None and server.vm_state == C.VM_STATE_RESIZED:
                if await self._healthy(inst.id, 60):
                    await api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id), metadata=md)
                else:
                    await api.RevertServerResize(C.RevertServerResizeRequest(id=server.id), metadata=md)
                server = await self._watch_server(server.id, 600, settled)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await self._resized(inst.id, None, f"resize failed: {exc.code().name}: {exc.details()}")
            return
        except BuildFailed as exc:
            await self._resized(inst.id, None, f"resize failed: {exc}")
            return
        if server is not None and server.flavor_ref == target and server.vm_state == C.VM_STATE_ACTIVE:
            await self._resized(inst.id, target, "")
        else:
            state = C.VmState.Name(server.vm_state) if server else "deleted"
            await self._resized(inst.id, None, f"resize to {target} did not complete: the server is {state}")

    async def _healthy(self, instance_id: str, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            got = self.instances.items.get(keys.db_instance(instance_id))
            if got is not None and got.msg.instance.service_status == D.SERVICE_STATUS_HEALTHY:
                return True
            await asyncio.sleep(0.2)
        return False

    async def _resized(self, instance_id: str, flavor_ref: str | None, fault: str) -> None:
        def mutate(r: R.InstanceRecord):
            if r.instance.task_status != D.TASK_STATUS_RESIZING:
                raise errors.FailedPrecondition("no longer resizing")
            if flavor_ref:
                r.instance.flavor_ref = flavor_ref
            if fault:
                _log.warning("resize failed", instance_id=instance_id, fault=fault)
                r.instance.fault.CopyFrom(D.Fault(message=fault, created_at=now()))
            r.instance.task_status = D.TASK_STATUS_NONE
            r.resize_flavor_ref = ""
            r.instance.updated_at.CopyFrom(now())
            status.refresh(r.instance)
        try:
            await self.store.update(keys.db_instance(instance_id), R.InstanceRecord, mutate)
        except (errors.FailedPrecondition, errors.NotFound):
            pass

    # ---- delete -------------------------------------------------------------------

    async def delete(self, got) -> None:
        rec = got.msg
        inst = rec.instance
        ids = {inst.server_id} - {""}
        if rec.server_name:
            ids |= {s.id for s in await self._servers_named(rec.server_name)}
        api, md = self.compute, self.compute.metadata
        for server_id in ids:
            await _ignore_missing(api.compute.DeleteServer(C.DeleteServerRequest(id=server_id),
                                                           metadata=md))
        for server_id in ids:
            await self._watch_server(server_id, 120, lambda s: s is None)
        self.prepared.discard(rec.guest_id)
        if self.local is not None and rec.guest_id:
            await self.local.destroy(rec.guest_id)
        if inst.server_group_id:
            await _ignore_missing(api.server_groups.DeleteServerGroup(
                SVG.DeleteServerGroupRequest(id=inst.server_group_id), metadata=md))
        if inst.security_group_id:
            await _ignore_missing(api.security_groups.DeleteSecurityGroup(
                SG.DeleteSecurityGroupRequest(id=inst.security_group_id), metadata=md))
        key = keys.db_instance(inst.id)
        while True:
            current = await self.store.get(key, R.InstanceRecord)
            if current is None:
                return
            plan = await quotas.plan(self.store, inst.project_id,
                                     quotas.deltas(inst.volume.size_gb, -1))
            resp = await self.store.txn(
                [self.store.mod_is(key, current.mod_revision), *plan.compares],
                [self.store.delete(key), self.store.delete(keys.guest(rec.guest_id)), *plan.ops])
            if resp.succeeded:
                _log.info("database instance deleted", instance_id=inst.id)
                return


async def _ignore_missing(call) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
