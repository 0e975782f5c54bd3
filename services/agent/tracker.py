"""The node's own resource tracker (nova-compute's claims): a second check,
on the host, before spawning. The conductor's etcd claim is authoritative
across the cluster; this one catches a host whose capacity changed since."""

from __future__ import annotations

from nimbus import resources
from nimbus.compute.v1 import compute_pb2
from nimbus.state.v1 import records_pb2


class ResourceTracker:
    def __init__(self, node: records_pb2.NodeRecord):
        self.node = node
        self.claims: dict[str, records_pb2.Resources] = {}

    def used(self) -> records_pb2.Resources:
        out = records_pb2.Resources()
        for r in self.claims.values():
            resources.add(out, r)
        return out

    def claim(self, server: compute_pb2.Server, force: bool = False) -> bool:
        """Claim the server's flavor; False when it does not fit the limits.
        Claiming twice is a no-op (a reconnect replays assignments); `force`
        records a server that already runs here."""
        if server.id in self.claims:
            return True
        want = resources.for_flavor(server.flavor)
        if not force and not resources.fits(self.node, self.used(), want):
            return False
        self.claims[server.id] = want
        return True

    def drop(self, instance_id: str) -> None:
        self.claims.pop(instance_id, None)
