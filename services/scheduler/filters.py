"""Host filtering and weighing (nova-scheduler's filter scheduler, placement
folded in): pure functions over HostState, so they unit-test without I/O."""

from __future__ import annotations

import dataclasses
import random
from typing import Callable

from nimbus import resources
from nimbus.state.v1 import records_pb2


@dataclasses.dataclass(slots=True)
class HostState:
    host: str
    node: records_pb2.NodeRecord
    used_vcpus: int = 0
    used_memory_mb: int = 0
    used_disk_gb: int = 0
    # zone: the host's availability zone (its aggregate's, else the default).
    zone: str = "nova"
    # disabled: an admin took the host out of scheduling (HypervisorService).
    disabled: bool = False
    capacity: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        self.capacity = resources.capacity(self.node)   # once, not per filter check

    @property
    def free_vcpus(self) -> float:
        return self.capacity[0] - self.used_vcpus

    @property
    def free_memory_mb(self) -> float:
        return self.capacity[1] - self.used_memory_mb

    @property
    def free_disk_gb(self) -> float:
        return self.capacity[2] - self.used_disk_gb

    def consume(self, want: records_pb2.Resources) -> None:
        """Count a selection at once so one batch does not pile onto one host."""
        self.used_vcpus += want.vcpus
        self.used_memory_mb += want.memory_mb
        self.used_disk_gb += want.disk_gb


def fits(free: float, want: int) -> bool:
    return want <= free


def group_count(spec, host: str) -> int:
    return sum(1 for h in spec.group_hosts if h == host)


def anti_affinity_ok(hs: HostState, spec) -> bool:
    if spec.group_policy != "anti-affinity":
        return True
    return group_count(spec, hs.host) < max(1, spec.group_max_per_host)


def affinity_ok(hs: HostState, spec) -> bool:
    if spec.group_policy != "affinity" or not spec.group_hosts:
        return True
    return hs.host in spec.group_hosts


# Each filter: (name, predicate(host_state, request_spec) -> passes).
Filter = tuple[str, Callable[[HostState, object], bool]]

FILTERS: list[Filter] = [
    ("ComputeFilter", lambda hs, spec: not hs.node.disabled and not hs.disabled),
    ("ForcedHostFilter", lambda hs, spec: not spec.forced_host or hs.host == spec.forced_host),
    ("IgnoreHostsFilter", lambda hs, spec: hs.host not in spec.ignore_hosts),
    ("AvailabilityZoneFilter",
     lambda hs, spec: not spec.availability_zone or hs.zone == spec.availability_zone),
    ("ServerGroupAffinityFilter", affinity_ok),
    ("ServerGroupAntiAffinityFilter", anti_affinity_ok),
    ("SameHostFilter", lambda hs, spec: not spec.same_host or hs.host in spec.same_host),
    ("DifferentHostFilter", lambda hs, spec: hs.host not in spec.different_host),
    ("VCPUFilter", lambda hs, spec: fits(hs.free_vcpus, spec.resources.vcpus)),
    ("RamFilter", lambda hs, spec: fits(hs.free_memory_mb, spec.resources.memory_mb)),
    ("DiskFilter", lambda hs, spec: fits(hs.free_disk_gb, spec.resources.disk_gb)),
]


def passes_all(hs: HostState, spec) -> bool:
    """One host through every filter (the indexed scan's check)."""
    for _, passes in FILTERS:
        if not passes(hs, spec):
            return False
    return True


def filter_hosts(hosts: list[HostState], spec) -> tuple[list[HostState], str]:
    """The hosts passing every filter, and the name of the filter that
    removed the last ones ('' when some remain)."""
    for name, passes in FILTERS:
        hosts = [hs for hs in hosts if passes(hs, spec)]
        if not hosts:
            return [], name
    return hosts, ""


def ram_weight(hs: HostState) -> float:
    """Nova's RAMWeigher with a positive multiplier: spread onto free memory.
    Normalised by the host's size so big and small hosts fill evenly."""
    total = hs.node.total.memory_mb or 1
    return hs.free_memory_mb / total


def soft_group_weight(hs: HostState, spec) -> float:
    """Nova's ServerGroupSoftAffinityWeigher / SoftAntiAffinityWeigher: the
    members already on a host pull (soft-affinity) or push (soft-anti-
    affinity); it outweighs the RAM spread, as its multiplier does in Nova."""
    if spec is None or spec.group_policy not in ("soft-affinity", "soft-anti-affinity"):
        return 0.0
    members = group_count(spec, hs.host)
    return float(members if spec.group_policy == "soft-affinity" else -members)


def weigh(hosts: list[HostState], rng: random.Random, spec=None) -> list[HostState]:
    """Best first; ties broken at random so equal hosts share the load."""
    keyed = [(soft_group_weight(hs, spec), ram_weight(hs), rng.random(), hs) for hs in hosts]
    keyed.sort(key=lambda t: (-t[0], -t[1], t[2]))
    return [hs for *_, hs in keyed]
