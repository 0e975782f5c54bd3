"""SchedulerService: SelectDestinations over a list + watch view of nodes and
provider usage. Nodes live on their agents' leases, so a dead host drops out
of the view (ComputeFilter's 'service up') within one TTL."""

from __future__ import annotations

import random

from nimbus import log
from nimbus.rpc import auth
from nimbus.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from nimbus.services.scheduler.filters import HostState, filter_hosts, weigh
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import DELETED, Informer
from nimbus.store.store import Store

_log = log.get("nimbus.scheduler")


class HostManager:
    """HostStates kept current from two informers (nodes, providers)."""

    def __init__(self, store: Store):
        self.nodes = Informer(store, keys.NODES, records_pb2.NodeRecord)
        self.providers = Informer(store, keys.PROVIDERS, records_pb2.ProviderUsage)
        self.states: dict[str, HostState] = {}
        self.nodes.add_listener(self._on_node)
        self.providers.add_listener(self._on_provider)

    def _on_node(self, kind, key, new, old) -> None:
        host = key[len(keys.NODES):]
        if kind == DELETED:
            self.states.pop(host, None)
            return
        hs = self.states.get(host)
        if hs is None:
            hs = self.states[host] = HostState(host, new.msg)
            usage = self.providers.items.get(keys.provider(host))
            if usage is not None:
                self._set_usage(hs, usage.msg)
        else:
            hs.node = new.msg

    def _on_provider(self, kind, key, new, old) -> None:
        hs = self.states.get(key[len(keys.PROVIDERS):])
        if hs is not None and new is not None:
            self._set_usage(hs, new.msg)

    @staticmethod
    def _set_usage(hs: HostState, usage: records_pb2.ProviderUsage) -> None:
        hs.used_vcpus = usage.used.vcpus
        hs.used_memory_mb = usage.used.memory_mb
        hs.used_disk_gb = usage.used.disk_gb


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, hosts: HostManager, seed: int | None = None):
        self.hosts = hosts
        self.rng = random.Random(seed)

    async def SelectDestinations(self, request, context):
        auth.require_service()
        response = scheduler_pb2.SelectDestinationsResponse()
        candidates = list(self.hosts.states.values())
        for spec in request.specs:
            passing, reason = filter_hosts(candidates, spec)
            chosen = weigh(passing, self.rng)[: 1 + max(0, request.num_alternates)]
            if chosen:
                chosen[0].consume(spec.resources)
            response.selections.add(instance_id=spec.instance_id,
                                    hosts=[hs.host for hs in chosen],
                                    reason=f"filter {reason} returned 0 hosts" if reason else "")
        return response
