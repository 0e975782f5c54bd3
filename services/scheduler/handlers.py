"""SchedulerService: SelectDestinations over a list + watch view of nodes and
provider usage. Nodes live on their agents' leases, so a dead host drops out
of the view (ComputeFilter's 'service up') within one TTL."""

from __future__ import annotations

import random
import time

from nimbus import log, resources
from nimbus.rpc import auth
from nimbus.compute.v1 import aggregates_pb2
from nimbus.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from nimbus.services.scheduler.filters import HostState, filter_hosts, weigh
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store

_log = log.get("nimbus.scheduler")
DEFAULT_ZONE = "nova"   # hosts in no zoned aggregate (Nova's default_availability_zone)


class HostManager:
    """Host states from two informers: nodes (alive = present, on a lease)
    and allocations (usage = their sum per host).

    A selection is 'assumed' at once (counted against its host) so one batch
    or the next does not pile onto a host before the claim is visible. The
    assumption ends exactly when that instance's allocation appears, on
    whichever host the conductor placed it (same event that adds the usage),
    or after ASSUME_SECONDS when the claim never came (deleted, failed)."""

    ASSUME_SECONDS = 10.0

    def __init__(self, store: Store):
        self.nodes = Informer(store, keys.NODES, records_pb2.NodeRecord)
        self.allocations = Informer(store, keys.ALLOCATIONS, records_pb2.Allocation)
        self.aggregates = Informer(store, keys.AGGREGATES, aggregates_pb2.Aggregate)
        # Admins' scheduling switches (HypervisorService), apart from nodes.
        self.statuses = Informer(store, keys.COMPUTE_SERVICES, records_pb2.ComputeServiceStatus)
        self.used: dict[str, records_pb2.Resources] = {}
        self.assumed: dict[str, tuple[str, records_pb2.Resources, float]] = {}
        self.allocated: set[str] = set()   # consumers with an allocation
        self.allocations.add_listener(self._on_allocation)

    def _on_allocation(self, kind, key, new, old) -> None:
        if old is not None:
            resources.add(self.used.setdefault(old.msg.host, records_pb2.Resources()),
                          old.msg.resources, -1)
            self.allocated.discard(old.msg.consumer_id)
        if new is not None:
            resources.add(self.used.setdefault(new.msg.host, records_pb2.Resources()),
                          new.msg.resources, +1)
            self.allocated.add(new.msg.consumer_id)
            self.assumed.pop(new.msg.consumer_id, None)

    def assume(self, instance_id: str, host: str, want: records_pb2.Resources) -> None:
        if instance_id in self.allocated:
            return   # already placed (a late duplicate request): it is counted as is
        self.assumed[instance_id] = (host, want, time.monotonic() + self.ASSUME_SECONDS)

    def host_states(self) -> list[HostState]:
        clock = time.monotonic()
        for instance_id, (_, _, deadline) in list(self.assumed.items()):
            if deadline < clock:
                del self.assumed[instance_id]
        zone_of = {host: agg.msg.availability_zone for agg in self.aggregates.items.values()
                   if agg.msg.availability_zone for host in agg.msg.hosts}
        states = {}
        for key, v in self.nodes.items.items():
            used = self.used.get(v.msg.host, records_pb2.Resources())
            switch = self.statuses.items.get(keys.compute_service(v.msg.host))
            states[v.msg.host] = HostState(v.msg.host, v.msg, used.vcpus, used.memory_mb,
                                           used.disk_gb, zone_of.get(v.msg.host, DEFAULT_ZONE),
                                           disabled=switch is not None and switch.msg.disabled)
        for host, want, _ in self.assumed.values():
            if host in states:
                states[host].consume(want)
        return list(states.values())


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, hosts: HostManager, seed: int | None = None):
        self.hosts = hosts
        self.rng = random.Random(seed)

    async def SelectDestinations(self, request, context):
        auth.require_service()
        response = scheduler_pb2.SelectDestinationsResponse()
        candidates = self.hosts.host_states()
        # Members of one group placed earlier in this request count like
        # placed members (multi-create affinity and anti-affinity).
        placed_in_request: dict[str, list[str]] = {}
        for spec in request.specs:
            if spec.group_id and placed_in_request.get(spec.group_id):
                spec.group_hosts.extend(placed_in_request[spec.group_id])
            passing, reason = filter_hosts(candidates, spec)
            chosen = weigh(passing, self.rng, spec)[: 1 + max(0, request.num_alternates)]
            if chosen:
                chosen[0].consume(spec.resources)
                self.hosts.assume(spec.instance_id, chosen[0].host, spec.resources)
                if spec.group_id:
                    placed_in_request.setdefault(spec.group_id, []).append(chosen[0].host)
            response.selections.add(instance_id=spec.instance_id,
                                    hosts=[hs.host for hs in chosen],
                                    reason=f"filter {reason} returned 0 hosts" if reason else "")
        return response
