"""A host's parts of a move (Nova's resize_instance, finish_resize,
confirm_resize, revert_resize, finish_revert_resize). Which part is this
host's follows from the task state and the migration context; each part
ends with AdvanceMigration, and a failure reports a fault (ERROR).

- source, RESIZE_PREP: power off (graceful, then hard), the instance dir
  becomes `<uuid>_resize` (kept until confirm), one report: MIGRATED, its
  files are ready to be sent. Redone whole after a crash (each half is
  idempotent).
- destination, MIGRATED: fetch the files from the source (relayed by the
  conductor, each checked by size and SHA-256), point the root disk at
  this host's image cache, grow it to the new root_gb, make ephemeral and
  swap by the new flavor, define the domain with the new flavor, power on
  unless the server was STOPPED, one report: RESIZED. Redone whole after
  a crash (the fetch starts from an empty dir).
  MIGRATING and RESIZE_FINISH, where an older agent reported each half,
  run the rest of the same parts.
- source, RESIZE_CONFIRMING: undefine the old domain (not on a same-host
  resize: it is the new one), remove `_resize` (and an RBD disk's revert
  snapshot, taken at MIGRATING before the destination grows it in place).
- revert: the destination destroys its domain and files, then the source
  puts `_resize` back (an RBD disk rolls back to its snapshot: old data,
  old size) and powers on unless the server was STOPPED."""

from __future__ import annotations

import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import grpc

from nimbus import backoff, crashpoints
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2
from nimbus.conductor.v1 import conductor_pb2
from nimbus.imagebackend import DiskSource, ImageError, qemu_img
from nimbus.services.agent.client import Lost
from nimbus.virt.driver import GuestConfig, GuestDisk, SpawnError, Vif, disk_mapping

if TYPE_CHECKING:
    from nimbus.services.agent.agent import ComputeAgent

C = compute_pb2
NONE = C.TASK_STATE_UNSPECIFIED
CHUNK = 1 << 20
NOT_SENT = frozenset({"console.log"})


async def run(agent: "ComputeAgent", server: C.Server) -> None:
    ctx = agent.contexts.get(server.id)
    part = _part(agent.host, server, ctx) if ctx is not None else None
    if part is None:
        return
    try:
        await part(agent, server, ctx)
    except Lost as exc:
        agent.log.info("move step stopped", instance_id=server.id, reason=str(exc))
    except (SpawnError, ImageError, OSError, grpc.aio.AioRpcError) as exc:
        if backoff.is_transport_error(exc):
            # A peer restarting (the conductor, the other host not back on
            # its stream yet): not the server's fault. The agent tries the
            # step again after its backoff; every part can be redone.
            raise
        message = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
        agent.log.warning("move step failed", instance_id=server.id, error=message)
        await advance(agent, server, fault=C.Fault(
            code=500, message=f"Resize of server {server.id} failed on {agent.host}",
            details=message, created_at=now()))


def _part(host: str, server: C.Server, ctx):
    task, source, dest = server.task_state, host == ctx.source_host, host == ctx.dest_host
    if task == C.TASK_STATE_RESIZE_PREP and ctx.dest_host and source:
        return source_power_off
    if task == C.TASK_STATE_RESIZE_MIGRATING and source:
        return source_migrated
    if task in (C.TASK_STATE_RESIZE_MIGRATED, C.TASK_STATE_RESIZE_FINISH) and dest:
        return dest_finish
    if task == C.TASK_STATE_RESIZE_CONFIRMING and source:
        return source_confirm
    if task == C.TASK_STATE_RESIZE_REVERTING and not ctx.dest_reverted and dest:
        return dest_revert
    if task == C.TASK_STATE_RESIZE_REVERTING and ctx.dest_reverted and source:
        return source_revert
    return None


async def advance(agent: "ComputeAgent", server: C.Server, power_state: int = 0,
                  fault: C.Fault | None = None) -> C.Server:
    # The step's work is done, its report not sent: a crash here is the worst case.
    crashpoints.reach(f"agent:advance:{C.TaskState.Name(server.task_state)}")
    resp = await agent.client.call(agent.client.conductor.AdvanceMigration,
                                   conductor_pb2.AdvanceMigrationRequest(
                                       host=agent.host, instance_id=server.id,
                                       from_task_state=server.task_state, power_state=power_state,
                                       fault=fault))
    agent.learn(resp.server, resp.revision, resp.migration_context
                if resp.HasField("migration_context") else None)
    return resp.server


def _resize_dir(agent: "ComputeAgent", instance_id: str) -> str:
    return agent.driver.instance_dir(instance_id) + "_resize"


# ---- the source --------------------------------------------------------------------

async def source_power_off(agent, server, ctx) -> None:
    """The source's whole part, one report (PREP -> MIGRATED)."""
    await agent.driver.power_off(server.id, agent.shutdown_timeout)
    # Powered off, disks not kept yet: a crash here redoes the whole part.
    crashpoints.reach("agent:resize:powered-off")
    await _keep_disks(agent, server)


async def source_migrated(agent, server, ctx) -> None:
    """MIGRATING (an older agent's first report landed): the rest of the part."""
    await agent.driver.power_off(server.id, agent.shutdown_timeout)   # idempotent
    await _keep_disks(agent, server)


async def _keep_disks(agent, server) -> None:
    inst, kept = agent.driver.instance_dir(server.id), _resize_dir(agent, server.id)
    if os.path.isdir(inst) and not os.path.isdir(kept):
        os.rename(inst, kept)
    if not os.path.isdir(kept):
        raise SpawnError(f"{kept} is missing: the server's disks are gone")
    await agent.backend.keep_revert_point(server.id)   # disks that stay put (RBD)
    await advance(agent, server, power_state=C.POWER_STATE_SHUTDOWN)


async def push_disks(agent: "ComputeAgent", request) -> None:
    """Answer a DISK_REQUEST: every file of `<uuid>_resize`, in chunks, each
    file closed by its size and SHA-256."""
    kept = _resize_dir(agent, request.instance_id)
    source_dir = agent.driver.instance_dir(request.instance_id)

    def chunks():
        first = conductor_pb2.DiskChunk(request_id=request.request_id, host=agent.host,
                                        source_dir=source_dir)
        if not os.path.isdir(kept):
            first.error = f"{kept} is missing on {agent.host}"
            yield conductor_pb2.PushDisksRequest(chunk=first)
            return
        yield conductor_pb2.PushDisksRequest(chunk=first)
        for name in sorted(os.listdir(kept)):
            path = os.path.join(kept, name)
            if name in NOT_SENT or not os.path.isfile(path):
                continue
            digest, size = hashlib.sha256(), 0
            with open(path, "rb") as f:
                while data := f.read(CHUNK):
                    digest.update(data)
                    size += len(data)
                    yield conductor_pb2.PushDisksRequest(chunk=conductor_pb2.DiskChunk(
                        request_id=request.request_id, name=name, data=data))
            yield conductor_pb2.PushDisksRequest(chunk=conductor_pb2.DiskChunk(
                request_id=request.request_id, name=name, end_of_file=True, size=size,
                sha256=digest.hexdigest()))
    try:
        await agent.client.conductor.PushDisks(chunks(), metadata=agent.client.metadata,
                                               timeout=600)
    except grpc.aio.AioRpcError as exc:
        agent.log.warning("sending disks failed", instance_id=request.instance_id,
                          code=exc.code().name)


async def source_confirm(agent, server, ctx) -> None:
    if ctx.source_host != ctx.dest_host:
        await agent.driver.destroy(server.id)   # same host: that domain is the new one
    shutil.rmtree(_resize_dir(agent, server.id), ignore_errors=True)
    await agent.backend.drop_revert_point(server.id)
    await advance(agent, server)
    agent.log.info("resize confirmed", instance_id=server.id)


async def source_revert(agent, server, ctx) -> None:
    inst, kept = agent.driver.instance_dir(server.id), _resize_dir(agent, server.id)
    if os.path.isdir(kept):
        shutil.rmtree(inst, ignore_errors=True)
        os.rename(kept, inst)
    await agent.backend.revert_to_point(server.id)   # an RBD root back to its old size
    power = C.POWER_STATE_SHUTDOWN
    if ctx.old_vm_state != C.VM_STATE_STOPPED:
        await agent.driver.power_on(server.id)   # defined again from libvirt.xml if need be
        power = C.POWER_STATE_RUNNING
    await advance(agent, server, power_state=power)
    agent.log.info("resize reverted", instance_id=server.id)


# ---- the destination ---------------------------------------------------------------

async def dest_revert(agent, server, ctx) -> None:
    await agent.driver.destroy(server.id)
    shutil.rmtree(agent.driver.instance_dir(server.id), ignore_errors=True)
    await advance(agent, server)


async def fetch_disks(agent: "ComputeAgent", server_id: str, inst: str) -> str:
    """The source's files into `inst`, each checked; returns the source's
    instance dir (the paths its libvirt.xml names)."""
    shutil.rmtree(inst, ignore_errors=True)
    os.makedirs(inst)
    source_dir, out, digest, size = "", None, hashlib.sha256(), 0
    call = agent.client.conductor.FetchDisks(conductor_pb2.FetchDisksRequest(
        host=agent.host, instance_id=server_id), metadata=agent.client.metadata, timeout=600)
    async for message in call:
        chunk = message.chunk
        if chunk.source_dir:
            source_dir = chunk.source_dir
            continue
        if "/" in chunk.name or chunk.name.startswith("."):
            raise SpawnError(f"refusing a file named {chunk.name!r}")
        if out is None:
            out = open(os.path.join(inst, chunk.name), "wb")
            digest, size = hashlib.sha256(), 0
        if chunk.end_of_file:
            out.close()
            out = None
            if size != chunk.size or digest.hexdigest() != chunk.sha256:
                raise SpawnError(f"{chunk.name} arrived damaged ({size} of {chunk.size} bytes)")
            continue
        out.write(chunk.data)
        digest.update(chunk.data)
        size += len(chunk.data)
    if out is not None:
        out.close()
        raise SpawnError("the transfer ended in the middle of a file")
    return source_dir


def _source_guest(xml: str, source_dir: str, inst: str):
    """What the source's domain had that the flavor does not say: VIFs and
    direct kernel boot (paths moved to this host's instance dir)."""
    root = ET.fromstring(xml.replace(source_dir, inst))
    vifs = [Vif(i.find("source").get("bridge"), i.find("mac").get("address"))
            for i in root.findall("devices/interface")]
    os_el = root.find("os")
    text = (lambda tag: (os_el.findtext(tag) or "") if os_el is not None else "")
    return vifs, text("kernel"), text("initrd"), text("cmdline")


async def dest_finish(agent, server, ctx) -> None:
    """The destination's whole part, one report (MIGRATED -> RESIZED)."""
    inst = agent.driver.instance_dir(server.id)
    source_dir = await fetch_disks(agent, server.id, inst)
    flavor = ctx.new_flavor
    grown_gb = flavor.disk_gb if flavor.disk_gb > ctx.old_flavor.disk_gb else 0
    image = await agent.client.image(server.image_ref)
    config_drive = (server.config_drive or agent.force_config_drive
                    or os.path.exists(os.path.join(inst, "disk.config")))
    root, config = await agent.backend.moved_disks(server.id, inst, image.id,
                                                   agent.client.download(image.id),
                                                   grown_gb, config_drive)
    mapping = disk_mapping(flavor, config_drive)
    disks = [GuestDisk(*mapping["disk"], root)]
    for name, size, grow in (("disk.eph0", f"{flavor.ephemeral_gb}G", True),
                             ("disk.swap", f"{flavor.swap_mb}M", False)):
        path = os.path.join(inst, name)
        if name not in mapping:
            if os.path.exists(path):
                os.unlink(path)
            continue
        if os.path.exists(path) and grow:
            await qemu_img.run("resize", "-q", path, size)
        else:   # swap holds nothing worth keeping: made anew at its new size
            if os.path.exists(path):
                os.unlink(path)
            await qemu_img.run("create", "-q", "-f", "qcow2", path, size)
        disks.append(GuestDisk(*mapping[name], DiskSource("file", "qcow2", path=path)))
    if config:
        disks.append(GuestDisk(*mapping["disk.config"], config))
    with open(os.path.join(inst, "libvirt.xml")) as f:
        vifs, kernel, initrd, cmdline = _source_guest(f.read(), source_dir, inst)
    guest = C.Server()
    guest.CopyFrom(server)
    guest.flavor.CopyFrom(flavor)
    running = ctx.old_vm_state != C.VM_STATE_STOPPED
    await agent.driver.spawn(GuestConfig(
        server=guest, virt_type=agent.driver.virt_type, disks=disks,
        console_log=os.path.join(inst, "console.log"), vifs=vifs, kernel=kernel, initrd=initrd,
        cmdline=cmdline), plug_vifs=agent.driver.plug_vifs, start=running)
    await advance(agent, server, power_state=C.POWER_STATE_RUNNING if running
                  else C.POWER_STATE_SHUTDOWN)
    agent.log.info("resize finished", instance_id=server.id, flavor=flavor.name)

