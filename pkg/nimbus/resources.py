"""Resource arithmetic shared by the scheduler, the conductor's claims and
the agent's tracker: what a flavor consumes, and what a node can hold."""

from __future__ import annotations

import math

from nimbus.compute.v1 import compute_pb2
from nimbus.state.v1 import records_pb2


def for_flavor(flavor: compute_pb2.Flavor) -> records_pb2.Resources:
    return records_pb2.Resources(
        vcpus=flavor.vcpus, memory_mb=flavor.ram_mb,
        disk_gb=flavor.disk_gb + flavor.ephemeral_gb + math.ceil(flavor.swap_mb / 1024))


def capacity(node: records_pb2.NodeRecord) -> tuple[float, float, float]:
    """(vCPUs, memory MB, disk GB) the node may hand out: total × allocation
    ratio − reserved, as Nova's placement inventories compute it."""
    def usable(total: int, reserved: int, ratio: float) -> float:
        return total * (ratio or 1.0) - reserved
    return (usable(node.total.vcpus, node.reserved.vcpus, node.cpu_allocation_ratio),
            usable(node.total.memory_mb, node.reserved.memory_mb, node.ram_allocation_ratio),
            usable(node.total.disk_gb, node.reserved.disk_gb, node.disk_allocation_ratio))


def fits(node: records_pb2.NodeRecord, used: records_pb2.Resources,
         want: records_pb2.Resources) -> bool:
    vcpus, memory_mb, disk_gb = capacity(node)
    return (used.vcpus + want.vcpus <= vcpus and used.memory_mb + want.memory_mb <= memory_mb
            and used.disk_gb + want.disk_gb <= disk_gb)


def add(used: records_pb2.Resources, delta: records_pb2.Resources, sign: int = 1) -> None:
    used.vcpus = max(0, used.vcpus + sign * delta.vcpus)
    used.memory_mb = max(0, used.memory_mb + sign * delta.memory_mb)
    used.disk_gb = max(0, used.disk_gb + sign * delta.disk_gb)
