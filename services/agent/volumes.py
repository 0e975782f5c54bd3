"""Volumes on this host's domains (nova-compute's attach_volume and
detach_volume). The assignment stream carries each server's InstanceVolumes
with their connections (written by the volume manager): an ATTACHING one
with a connection is added to the domain, a DETACHING one removed, and the
outcome goes back through the conductor (CompleteVolumeAttachment), which
moves the attachment and the volume on together. Level-triggered and
idempotent: a restarted agent sees the same states again and finishes."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from nimbus.compute.v1 import compute_pb2 as C
from nimbus.conductor.v1 import conductor_pb2
from nimbus.imagebackend import DiskSource
from nimbus.services.agent.client import Lost
from nimbus.state.v1 import records_pb2
from nimbus.virt.driver import GuestDisk, SpawnError

if TYPE_CHECKING:
    from nimbus.services.agent.agent import ComputeAgent

IV = records_pb2.InstanceVolume


def guest_disk(iv: records_pb2.InstanceVolume) -> GuestDisk:
    conn = iv.connection
    if conn.driver == "rbd":
        monitors = tuple((h, int(p)) for h, _, p in (m.rpartition(":") for m in conn.monitors))
        source = DiskSource(kind="network", format="raw", name=conn.name, monitors=monitors)
    else:
        source = DiskSource(kind="file", format="raw", path=conn.path)
    return GuestDisk(dev=iv.device, bus="virtio", device="disk", source=source)


def learn(agent: "ComputeAgent", server_id: str, volumes) -> None:
    """Keep the server's InstanceVolumes; wake whoever waits for them."""
    if volumes or server_id in agent.server_volumes:
        agent.server_volumes[server_id] = [IV.FromString(iv.SerializeToString()) for iv in volumes]
        news, agent.volume_news = agent.volume_news, asyncio.Event()
        news.set()


async def connections(agent: "ComputeAgent", server_id: str,
                      timeout: float) -> list[records_pb2.InstanceVolume]:
    """A building server's volumes once every one has its connection (the
    volume manager made them); SpawnError when one failed or time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        ivs = agent.server_volumes.get(server_id, [])
        failed = [iv for iv in ivs if iv.error]
        if failed:
            raise SpawnError(f"volume {failed[0].volume_id} ({failed[0].device}) failed: "
                             f"{failed[0].error}")
        if all(iv.connection.driver for iv in ivs):
            return ivs
        left = deadline - time.monotonic()
        if left <= 0:
            raise SpawnError(f"volumes not ready within {timeout:.0f} s: " + ", ".join(
                iv.volume_id for iv in ivs if not iv.connection.driver))
        try:
            await asyncio.wait_for(agent.volume_news.wait(), left)
        except asyncio.TimeoutError:
            pass


def on_event(agent: "ComputeAgent", server, volumes) -> None:
    """Start the attach or detach each volume's state asks for (once). A
    building server's volumes are the build's (its domain is made with them);
    once it runs, their completion is reported from here."""
    if server.vm_state == C.VM_STATE_BUILDING:
        return
    server_id = server.id
    for iv in volumes:
        if iv.state == IV.STATE_ATTACHING and iv.connection.driver:
            work = ("attach", server_id, iv.volume_id)
        elif iv.state == IV.STATE_DETACHING:
            work = ("detach", server_id, iv.volume_id)
        else:
            continue
        if work not in agent.volume_work:
            agent.volume_work.add(work)
            agent._spawn(_run(agent, work, IV.FromString(iv.SerializeToString())))


async def _run(agent: "ComputeAgent", work: tuple, iv: records_pb2.InstanceVolume) -> None:
    kind, server_id, volume_id = work
    started = time.monotonic()
    error = ""
    try:
        if kind == "attach":
            await agent.driver.attach_disk(server_id, guest_disk(iv))
        else:
            await agent.driver.detach_disk(server_id, iv.device)
    except SpawnError as exc:
        if kind == "detach":
            agent.log.error("volume detach failed", instance_id=server_id, volume_id=volume_id,
                            error=str(exc))
            agent.volume_work.discard(work)   # the next event tries again
            return
        error = f"attaching to server {server_id} failed: {exc}"
    try:
        await agent.client.call(agent.client.conductor.CompleteVolumeAttachment,
                                conductor_pb2.CompleteVolumeAttachmentRequest(
                                    host=agent.host, instance_id=server_id, volume_id=volume_id,
                                    detached=kind == "detach", error=error))
        agent.log.info(f"volume {kind} done", instance_id=server_id, volume_id=volume_id,
                       device=iv.device, seconds=round(time.monotonic() - started, 3),
                       error=error or None)
    except Lost:
        pass   # the server or the volume moved on (deleted): nothing to report
    finally:
        agent.volume_work.discard(work)
