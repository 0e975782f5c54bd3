"""The build (nova-compute's build_and_run_instance): BUILDING with expected
(SCHEDULING, none), claim on the node, NETWORKING, BLOCK_DEVICE_MAPPING,
SPAWNING (image into the backend, domain XML, define, start, wait for
RUNNING), then ACTIVE. A failure cleans up and gives the server back for
rescheduling; a transport error on the way (the image service or the
conductor restarting) is waited out instead, and costs no attempt."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from typing import TYPE_CHECKING

import grpc

from nimbus import backoff, crashpoints
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2
from nimbus.imagebackend import DiskSource, ImageError, qemu_img
from nimbus.services.agent.client import Lost
from nimbus.services.agent import volumes
from nimbus.services.agent.delete import cleanup
from nimbus.virt import configdrive
from nimbus.virt.driver import GuestConfig, GuestDisk, SpawnError, Vif, disk_mapping
from nimbus.virt.network_data import network_data_for_vifs

if TYPE_CHECKING:
    from nimbus.services.agent.agent import ComputeAgent

C = compute_pb2


@dataclasses.dataclass
class BuildInputs:
    """What the config drive needs beyond the public Server (secrets: never logged)."""
    user_data: bytes = b""
    public_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    files: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)


async def build(agent: "ComputeAgent", server: C.Server) -> None:
    sid = server.id
    inputs = agent.build_inputs.get(sid, BuildInputs())
    if not agent.tracker.claim(server):
        agent.log.info("claim failed on the node, rescheduling", instance_id=sid)
        await agent.client.give_back(sid, f"Insufficient compute resources on {agent.host}",
                                     [C.TASK_STATE_SCHEDULING])
        return
    stage = C.TASK_STATE_SCHEDULING
    try:
        if server.server_group:
            violation = await agent.client.check_server_group(sid)
            if violation:
                agent.tracker.drop(sid)
                agent.log.info("server group policy violated, rescheduling", instance_id=sid)
                await agent.client.give_back(sid, f"Build of instance {sid} was re-scheduled: "
                                                  f"{violation}", [C.TASK_STATE_SCHEDULING])
                return
        await agent.update(sid, [C.TASK_STATE_SCHEDULING, C.TASK_STATE_UNSPECIFIED],
                           vm_state=C.VM_STATE_BUILDING, task_state=C.TASK_STATE_NETWORKING)
        stage = C.TASK_STATE_NETWORKING
        crashpoints.reach("agent:build:networking")
        vifs = await allocate_networks(agent, sid)
        if vifs is None:   # no ports to be had: the conductor put it in ERROR
            await cleanup(agent, sid)
            return
        stage = C.TASK_STATE_BLOCK_DEVICE_MAPPING
        # Volumes (boot from volume, volumes at boot): made by the volume
        # manager; their connections come over the assignment stream.
        block = (await volumes.connections(agent, sid, agent.volume_timeout)
                 if agent.server_volumes.get(sid) else [])
        await agent.update(sid, [stage], task_state=C.TASK_STATE_SPAWNING)
        stage = C.TASK_STATE_SPAWNING
        await spawn_waiting_out_transport_errors(agent, server, inputs, vifs, block)
        crashpoints.reach("agent:build:spawned")
        await agent.update(sid, [stage], vm_state=C.VM_STATE_ACTIVE,
                           task_state=C.TASK_STATE_UNSPECIFIED,
                           power_state=C.POWER_STATE_RUNNING, launched_at=now())
        agent.log.info("server active", instance_id=sid)
    except Lost as exc:
        # Deleted (or otherwise taken) mid-build: undo; the delete path
        # (if any) finishes the job.
        agent.log.info("build stopped", instance_id=sid, reason=str(exc))
        await cleanup(agent, sid)
    except Exception as exc:  # noqa: BLE001 - any failure: clean up, give back, say why
        if isinstance(exc, grpc.aio.AioRpcError):
            message = exc.details()
        elif isinstance(exc, (SpawnError, ImageError, OSError)):
            message = str(exc)
        else:   # a bug: keep the type so the fault is useful
            message = f"{type(exc).__name__}: {exc}"
            agent.log.error("build crashed", instance_id=sid, exc_info=exc)
        agent.log.warning("build failed, rescheduling", instance_id=sid, error=message)
        await cleanup(agent, sid)
        await agent.client.give_back(sid, f"Build of instance {sid} failed: {message}", [stage])


async def recover(agent: "ComputeAgent", server: C.Server) -> None:
    """We restarted in the middle of this build: clean up, give it back."""
    agent.log.info("build interrupted by a restart, rescheduling", instance_id=server.id)
    await cleanup(agent, server.id)
    await agent.client.give_back(server.id, f"compute host {agent.host} restarted during the build",
                                 [server.task_state])


async def allocate_networks(agent: "ComputeAgent", instance_id: str):
    """The server's VIFs (NETWORKING -> BLOCK_DEVICE_MAPPING), or None when
    the conductor could not get its ports and put it in ERROR."""
    resp = await agent.client.allocate_networks(instance_id)
    agent.learn(resp.server, resp.revision)
    if resp.HasField("fault"):
        agent.log.info("network allocation failed", instance_id=instance_id,
                       reason=resp.fault.message)
        return None
    return list(resp.vifs)


async def spawn_waiting_out_transport_errors(agent: "ComputeAgent", server: C.Server,
                                             inputs: BuildInputs, vifs, block=()) -> None:
    """spawn(), tried again (from a clean instance dir, with backoff and
    jitter) while the image service is unreachable and the server still
    wants this build."""
    attempt = 0
    while True:
        try:
            return await spawn(agent, server, inputs, vifs, block)
        except grpc.aio.AioRpcError as exc:
            if not backoff.is_transport_error(exc):
                raise
            agent.client.transport_retries += 1
            agent.log.warning("image service unreachable, retrying the spawn",
                              instance_id=server.id, code=exc.code().name, attempt=attempt)
        await cleanup(agent, server.id, keep_claim=True)
        await asyncio.sleep(backoff.delay(attempt))
        attempt += 1
        latest = agent.servers.get(server.id)
        if latest is None or latest.task_state != C.TASK_STATE_SPAWNING:
            raise Lost("the server changed while the image service was away")


async def fetch_to_instance(agent: "ComputeAgent", image_id: str, dest: str) -> str:
    """A kernel or ramdisk: cached in _base, copied into the instance dir
    (as Nova does, so the domain never points into the shared cache)."""
    cached, _ = await agent.backend_cache.fetch(image_id, agent.client.download(image_id),
                                                inspect=False)
    shutil.copyfile(cached, dest)
    return dest


async def spawn(agent: "ComputeAgent", server: C.Server, inputs: BuildInputs, vifs,
                block=()) -> None:
    """`block`: the server's volumes with their connections; the one at vda
    is the root disk (boot from volume: no image is fetched for it)."""
    boot_volume = next((iv for iv in block if iv.device == "vda"), None)
    image = await agent.client.image(server.image_ref) if server.image_ref else None
    inst_dir = agent.driver.instance_dir(server.id)
    os.makedirs(inst_dir, exist_ok=True)
    flavor = server.flavor
    use_config_drive = server.config_drive or agent.force_config_drive
    mapping = disk_mapping(flavor, use_config_drive)
    if boot_volume is not None:
        root = volumes.guest_disk(boot_volume).source
    else:
        root = await agent.backend.create_root_disk(server.id, inst_dir, image.id,
                                                    image.disk_format,
                                                    agent.client.download(image.id), flavor.disk_gb)
    disks = [GuestDisk(*mapping["disk"], root)]
    disks += [volumes.guest_disk(iv) for iv in block if iv is not boot_volume]
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
                                network_data=network_data_for_vifs(vifs))
        disks.append(GuestDisk(*mapping["disk.config"],
                               await agent.backend.import_config_drive(server.id, iso)))
    kernel = initrd = cmdline = ""
    props = image.properties if image is not None else {}
    if props.get("kernel_id"):
        kernel = await fetch_to_instance(agent, props["kernel_id"], os.path.join(inst_dir, "kernel"))
        if props.get("ramdisk_id"):
            initrd = await fetch_to_instance(agent, props["ramdisk_id"],
                                             os.path.join(inst_dir, "ramdisk"))
        cmdline = props.get("os_command_line", "console=ttyS0 root=/dev/vda")
    cfg = GuestConfig(server=server, virt_type=agent.driver.virt_type, disks=disks,
                      console_log=os.path.join(inst_dir, "console.log"),
                      vifs=[Vif(v.bridge, v.mac_address) for v in vifs],
                      kernel=kernel, initrd=initrd, cmdline=cmdline)
    await agent.driver.spawn(cfg, plug_vifs=agent.driver.plug_vifs)
