"""The end state a crash must leave, once the crashed process is back: no
server in a task state, every allocation matching a server on that host
and the host's instance dirs (its domains' disks), every project's quota
usage equal to its records, no reservation and no build inputs left over."""

from __future__ import annotations

import collections
import os

from nimbus import quota
from nimbus.compute.v1 import compute_pb2 as C, quotas_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys


async def assert_consistent(stack) -> list[C.Server]:
    store = stack.store
    records, _ = await store.list(keys.INSTANCES, records_pb2.InstanceRecord)
    servers = [v.msg.server for _, v in records]
    for s in servers:
        assert s.task_state == 0 and s.vm_state in (C.VM_STATE_ACTIVE, C.VM_STATE_ERROR), s
        assert s.vm_state == C.VM_STATE_ACTIVE or s.fault.message, s
    allocations, _ = await store.list(keys.ALLOCATIONS, records_pb2.Allocation)
    allocated = {(v.msg.host, v.msg.consumer_id) for _, v in allocations}
    placed = {(s.host, s.id) for s in servers if s.host and s.vm_state == C.VM_STATE_ACTIVE}
    assert allocated == placed, (allocated ^ placed)
    sim = os.path.join(stack.cfg.state_dir, "sim")
    dirs = {(h, n) for h in os.listdir(sim)
            for n in os.listdir(os.path.join(sim, h, "instances")) if len(n) == 36}
    assert dirs == placed, (dirs ^ placed)
    used: dict[str, dict[str, int]] = collections.defaultdict(lambda: dict.fromkeys(
        ("instances", "cores", "ram"), 0))
    for s in servers:
        for resource, delta in quota.instance_deltas(s.flavor.vcpus, s.flavor.ram_mb).items():
            used[s.project_id][resource] += delta
    usages, _ = await store.list(keys.USAGES, quotas_pb2.QuotaUsage)
    for key, v in usages:
        project = key.removeprefix(keys.USAGES)
        got = {r: getattr(v.msg, r) for r in ("instances", "cores", "ram")}
        assert got == used.get(project, dict.fromkeys(got, 0)), (project, got, used.get(project))
    assert await store.count(keys.RESERVATIONS) == 0
    inputs, _ = await store.list_raw(keys.BUILD_INPUTS)
    ids = {s.id for s in servers}
    assert {store.suffix(kv.key).removeprefix(keys.BUILD_INPUTS) for kv in inputs} <= ids
    return servers
