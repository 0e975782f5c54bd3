"""Real crashes in the middle of a resize: the agent process (both
simulated hosts: the source and the destination) or the conductor dies by
a crash point (nimbus.crashpoints: os._exit, as kill -9) right after a
step's work and before its report, or inside a host's part (the source
powered off, its disks not kept yet); started again, it finishes the move.
Nothing stays in a task state and the allocations match the hosts."""

import os

import pytest

from nimbus.state.v1 import records_pb2
from stack import C, Stack, user

# (component, crash point): "advance:<task>" is a step's end before its
# report (the agent's) or before its transaction (the conductor's).
STEP_ENDS = [
    ("agent", "resize:powered-off"),                   # the source powered off, no _resize yet
    ("agent", "advance:TASK_STATE_RESIZE_PREP"),       # the source's _resize made
    ("agent", "advance:TASK_STATE_RESIZE_MIGRATED"),   # the destination's domain defined
    ("agent", "advance:TASK_STATE_RESIZE_CONFIRMING"),  # the source cleaned up
    ("conductor", "advance:TASK_STATE_RESIZE_PREP"),
    ("conductor", "advance:TASK_STATE_RESIZE_MIGRATED"),
    ("conductor", "advance:TASK_STATE_RESIZE_CONFIRMING"),
]


def settled(vm_state):
    return lambda s: s is not None and s.task_state == 0 and s.vm_state == vm_state


@pytest.mark.parametrize("component,step", STEP_ENDS)
async def test_crash_at_a_step_end(etcd, tmp_path, qcow2_image, component, step):
    point = f"{component}:{step}"
    confirming = step.endswith("RESIZE_CONFIRMING")
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, memory_mb=4096, node_ttl=3,
                     subprocesses=(component,), crash_at=point) as s:
        await s.flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
        await s.flavor("m1.small", vcpus=2, ram_mb=1024, disk_gb=2)
        await s.image(qcow2_image)
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="f", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
        server = await s.wait_for(server.id, settled(C.VM_STATE_ACTIVE), timeout=60)
        await s.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                 metadata=user(), timeout=30)
        crashed = s.agents if component == "agent" else s.conductor
        if confirming:
            await s.wait_for(server.id, settled(C.VM_STATE_RESIZED), timeout=60)
            await s.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id),
                                            metadata=user(), timeout=30)
        assert await crashed.exited(timeout=60) == 137
        crashed.extra_env = {}
        await crashed.start(health=component == "conductor")
        if not confirming:
            resized = await s.wait_for(server.id, settled(C.VM_STATE_RESIZED), timeout=60)
            assert resized.flavor.name == "m1.small" and resized.host != server.host
            await s.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id),
                                            metadata=user(), timeout=30)
        done = await s.wait_for(server.id, settled(C.VM_STATE_ACTIVE), timeout=60)
        assert done.flavor.name == "m1.small" and done.host != server.host
        items, _ = await s.store.list("allocations/", records_pb2.Allocation)
        assert {(v.msg.host, v.msg.consumer_id) for _, v in items} == {(done.host, server.id)}
        sim = os.path.join(str(tmp_path), "sim")
        dirs = {h: sorted(n for n in os.listdir(os.path.join(sim, h, "instances"))
                          if n.startswith(server.id)) for h in os.listdir(sim)}
        assert dirs == {done.host: [server.id], server.host: []}
