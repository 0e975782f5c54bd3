"""Power: the hypervisor as the truth for servers nobody is working on
(Nova's _sync_instance_power_state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nimbus.compute.v1 import compute_pb2
from nimbus.services.agent.client import Lost

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
            if not agent.busy(sid) and s.task_state == NONE and s.vm_state in IDLE_VM_STATES}
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
