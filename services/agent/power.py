"""Power: stop, start, soft and hard reboot; guests resumed when their host
comes back; the hypervisor as the truth for servers nobody is working on
(Nova's _sync_instance_power_state); the serial console's tail."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2
from nimbus.conductor.v1 import conductor_pb2
from nimbus.services.agent.client import Lost
from nimbus.virt.driver import SpawnError

if TYPE_CHECKING:
    from nimbus.services.agent.agent import ComputeAgent

C = compute_pb2
NONE = C.TASK_STATE_UNSPECIFIED
IDLE_VM_STATES = (C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED, C.VM_STATE_PAUSED)


async def sync_power_states(agent: "ComputeAgent") -> None:
    """An ACTIVE server whose domain stopped, crashed or vanished behind our
    back becomes STOPPED (Nova stops it through its API); the next start is
    the user's call."""
    # Pick the idle servers before asking libvirt: a build that finishes
    # while we wait must not be judged by a snapshot older than its domain.
    idle = {sid: agent.revisions.get(sid) for sid, s in agent.servers.items()
            if not agent.busy(sid) and s.task_state == NONE and s.vm_state in IDLE_VM_STATES
            and s.host == agent.host}
    actual = await agent.driver.power_states()
    for sid, revision in idle.items():
        server = agent.servers.get(sid)
        if server is None or agent.busy(sid) or agent.revisions.get(sid) != revision:
            continue   # changed while we looked: next round
        power = actual.get(sid, C.POWER_STATE_UNSPECIFIED)
        if power == server.power_state:
            continue
        fields = {"power_state": power}
        if server.vm_state == C.VM_STATE_ACTIVE and power in (
                C.POWER_STATE_SHUTDOWN, C.POWER_STATE_CRASHED, C.POWER_STATE_UNSPECIFIED):
            fields["vm_state"] = C.VM_STATE_STOPPED
        agent.log.info("power state changed behind our back", instance_id=sid,
                       power_state=C.PowerState.Name(power))
        try:
            await agent.update(sid, [NONE], **fields)
        except Lost:
            pass   # a task started meanwhile: it owns the server now


# ---- the power actions (Nova's stop_instance, start_instance, reboot_instance) ----

async def _act(agent: "ComputeAgent", server: C.Server, what: str, hypervisor_call,
               done: tuple[int, int], failed_vm_state: int) -> None:
    """Do one power action; the task ends with `done` (vm_state, power_state),
    or, on failure, in `failed_vm_state` with a fault the owner reads (the
    hypervisor's words for admins) and an Error event on the action."""
    try:
        await hypervisor_call()
    except SpawnError as exc:
        agent.log.warning(f"{what} failed", instance_id=server.id, error=str(exc))
        actual = (await agent.driver.power_states()).get(server.id, C.POWER_STATE_UNSPECIFIED)
        await agent.update(server.id, [server.task_state], vm_state=failed_vm_state,
                           task_state=NONE, power_state=actual,
                           fault=C.Fault(code=500, message=f"{what} of server {server.id} failed",
                                         details=str(exc), created_at=now()))
        return
    await agent.update(server.id, [server.task_state], vm_state=done[0], task_state=NONE,
                       power_state=done[1])
    agent.log.info(f"{what} done", instance_id=server.id)


RUNNING = (C.VM_STATE_ACTIVE, C.POWER_STATE_RUNNING)


async def stop(agent: "ComputeAgent", server: C.Server) -> None:
    await _act(agent, server, "Stop", lambda: agent.driver.power_off(server.id, agent.shutdown_timeout),
               (C.VM_STATE_STOPPED, C.POWER_STATE_SHUTDOWN), server.vm_state)


async def start(agent: "ComputeAgent", server: C.Server) -> None:
    await _act(agent, server, "Start", lambda: agent.driver.power_on(server.id), RUNNING,
               C.VM_STATE_STOPPED)


async def reboot(agent: "ComputeAgent", server: C.Server) -> None:
    hard = server.task_state == C.TASK_STATE_REBOOTING_HARD
    await _act(agent, server, "Hard reboot" if hard else "Reboot",
               lambda: agent.driver.reboot(server.id, hard=hard), RUNNING, C.VM_STATE_ERROR)


async def resume_guest(agent: "ComputeAgent", server: C.Server) -> None:
    """resume_guests_state_on_host_boot: a server that was ACTIVE when its
    host went away runs again (defined again from its libvirt.xml and disks
    when the hypervisor forgot it). A failure is left to the power sync,
    which records the server as it really is."""
    try:
        await agent.driver.power_on(server.id)
        agent.log.info("guest resumed after the host restarted", instance_id=server.id)
    except SpawnError as exc:
        agent.log.warning("guest could not be resumed", instance_id=server.id, error=str(exc))


async def resume_guests(agent: "ComputeAgent") -> None:
    """After the first sync of a (re)started agent: resume every ACTIVE
    server, idle, whose domain does not run."""
    running = await agent.driver.power_states()
    for sid, server in list(agent.servers.items()):
        if (server.vm_state == C.VM_STATE_ACTIVE and server.task_state == NONE
                and server.host == agent.host and running.get(sid) != C.POWER_STATE_RUNNING):
            agent.start_step(server, "resume_guest")


async def answer_console(agent: "ComputeAgent", request) -> None:
    server = agent.servers.get(request.instance_id)
    output, error = "", ""
    if server is None:
        error = f"server {request.instance_id} is not on host {agent.host}"
    else:
        try:
            output = await asyncio.to_thread(agent.driver.console_tail, request.instance_id,
                                             request.length)
        except OSError as exc:
            error = f"cannot read the console: {exc.strerror}"
    await agent.client.quietly(agent.client.conductor.ReturnConsoleOutput,
                               conductor_pb2.ReturnConsoleOutputRequest(
                                   host=agent.host, request_id=request.request_id,
                                   output=output, error=error))
