"""The scheduler's view of hosts: one HostState per live node, kept up to
date from the informers' events (nodes, allocations, aggregates, the admins'
switches) instead of rebuilt per call, and indexed by the RAM weigher's key
per availability zone, so a placement walks the few best hosts instead of
filtering and weighing all of them. Nodes live on their agents' leases, so a
dead host drops out (ComputeFilter's 'service up') within one TTL."""

from __future__ import annotations

import heapq
import random
import time

from nimbus import resources
from nimbus.compute.v1 import aggregates_pb2
from nimbus.services.scheduler.filters import (HostState, filter_hosts, passes_all, ram_weight,
                                               soft_group_weight, weigh)
from nimbus.services.scheduler.index import WeightIndex
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store

DEFAULT_ZONE = "nova"   # hosts in no zoned aggregate (Nova's default_availability_zone)
SOFT_POLICIES = ("soft-affinity", "soft-anti-affinity")
NO_USAGE = records_pb2.Resources()   # read only


class HostManager:
    """Host states from four informers: nodes (alive = present, on a lease),
    allocations (usage = their sum per host), aggregates (zones) and the
    admins' scheduling switches.

    A selection is 'assumed' at once (counted against its host) so one batch
    or the next does not pile onto a host before the claim is visible. The
    assumption ends exactly when that instance's allocation appears, on
    whichever host the conductor placed it (same event that adds the usage),
    or after ASSUME_SECONDS when the claim never came (deleted, failed).

    `select` answers exactly what filter_hosts + weigh over every host would:
    the indexes only leave out hosts a filter would remove (disabled, another
    zone) and visit the rest in the weigher's order; every host visited still
    passes through every filter."""

    ASSUME_SECONDS = 10.0

    def __init__(self, store: Store):
        self.nodes = Informer(store, keys.NODES, records_pb2.NodeRecord)
        self.allocations = Informer(store, keys.ALLOCATIONS, records_pb2.Allocation)
        self.aggregates = Informer(store, keys.AGGREGATES, aggregates_pb2.Aggregate)
        # Admins' scheduling switches (HypervisorService), apart from nodes.
        self.statuses = Informer(store, keys.COMPUTE_SERVICES, records_pb2.ComputeServiceStatus)
        self.states: dict[str, HostState] = {}           # live hosts (a node record)
        self.used: dict[str, records_pb2.Resources] = {}      # allocations' sum per host
        self.pending: dict[str, list[int]] = {}   # assumptions' sum per host: vCPUs, MB, GB
        # instance id -> (host, (vCPUs, MB, GB), deadline), and a heap of
        # (deadline, id). Plain ints: a busy minute holds tens of thousands.
        self.assumed: dict[str, tuple[str, tuple[int, int, int], float]] = {}
        self._deadlines: list[tuple[float, str]] = []
        # consumer -> the hosts it holds allocations on (two while a move's
        # destination claim and a source allocation both name it)
        self.allocated: dict[str, set[str]] = {}
        self.zone_of: dict[str, str] = {}  # hosts of zoned aggregates
        # ComputeFilter and AvailabilityZoneFilter as prefilters: only hosts
        # enabled, by weight, over all zones and per zone.
        self.enabled = WeightIndex()
        self.by_zone: dict[str, WeightIndex] = {}
        self._indexed: dict[str, tuple[str, float]] = {}   # host -> (zone, weight) as indexed
        self.nodes.add_listener(self._on_node)
        self.allocations.add_listener(self._on_allocation)
        self.aggregates.add_listener(self._on_aggregate)
        self.statuses.add_listener(self._on_status)

    # ---- keeping the states ---------------------------------------------

    def _on_node(self, kind, key, new, old) -> None:
        if old is not None and (new is None or new.msg.host != old.msg.host):
            self.states.pop(old.msg.host, None)
            self._index(old.msg.host)
        if new is None:
            return
        host = new.msg.host
        hs = self.states.get(host)
        if hs is None:
            switch = self.statuses.items.get(keys.compute_service(host))
            self.states[host] = HostState(host, new.msg, zone=self.zone_of.get(host, DEFAULT_ZONE),
                                          disabled=switch is not None and switch.msg.disabled)
        else:
            hs.node = new.msg
            hs.capacity = resources.capacity(new.msg)
        self._recount(host)

    def _on_allocation(self, kind, key, new, old) -> None:
        if old is not None:
            resources.add(self.used.setdefault(old.msg.host, records_pb2.Resources()),
                          old.msg.resources, -1)
            hosts = self.allocated.get(old.msg.consumer_id)
            if hosts is not None:
                hosts.discard(old.msg.host)
                if not hosts:
                    del self.allocated[old.msg.consumer_id]
            self._recount(old.msg.host)
        if new is not None:
            resources.add(self.used.setdefault(new.msg.host, records_pb2.Resources()),
                          new.msg.resources, +1)
            self.allocated.setdefault(new.msg.consumer_id, set()).add(new.msg.host)
            self._unassume(new.msg.consumer_id)
            self._recount(new.msg.host)

    def _on_aggregate(self, kind, key, new, old) -> None:
        # Few aggregates, rare changes: recompute the map as a whole (a host
        # in two zoned aggregates gets the last one's zone, as before).
        zone_of = {host: agg.msg.availability_zone for agg in self.aggregates.items.values()
                   if agg.msg.availability_zone for host in agg.msg.hosts}
        touched = set(zone_of) | set(self.zone_of)
        self.zone_of = zone_of
        for host in touched:
            hs = self.states.get(host)
            if hs is not None and hs.zone != zone_of.get(host, DEFAULT_ZONE):
                hs.zone = zone_of.get(host, DEFAULT_ZONE)
                self._index(host)

    def _on_status(self, kind, key, new, old) -> None:
        hs = self.states.get(key[len(keys.COMPUTE_SERVICES):])
        if hs is not None:
            hs.disabled = new is not None and new.msg.disabled
            self._index(hs.host)

    def _recount(self, host: str) -> None:
        """A host's usage: its allocations plus what is assumed on it."""
        hs = self.states.get(host)
        if hs is None:
            return
        used = self.used.get(host, NO_USAGE)
        vcpus, memory_mb, disk_gb = self.pending.get(host) or (0, 0, 0)
        hs.used_vcpus = used.vcpus + vcpus
        hs.used_memory_mb = used.memory_mb + memory_mb
        hs.used_disk_gb = used.disk_gb + disk_gb
        self._index(host)

    def _index(self, host: str) -> None:
        """Put the host where its state says (or out of the indexes)."""
        hs = self.states.get(host)
        key = None
        if hs is not None and not hs.node.disabled and not hs.disabled:
            key = (hs.zone, ram_weight(hs))
        old = self._indexed.get(host)
        if key == old:
            return
        if old is not None and (key is None or old[0] != key[0]):
            zone = self.by_zone[old[0]]
            zone.discard(host)
            if not len(zone):
                del self.by_zone[old[0]]
        if key is None:
            self.enabled.discard(host)
            del self._indexed[host]
            return
        self.enabled.put(host, key[1])
        self.by_zone.setdefault(key[0], WeightIndex()).put(host, key[1])
        self._indexed[host] = key

    # ---- assumptions ----------------------------------------------------

    def assume(self, instance_id: str, host: str, want: records_pb2.Resources) -> None:
        if host in self.allocated.get(instance_id, ()):
            # Already placed there (a late duplicate request): counted as is.
            # An allocation elsewhere (a resize's source, before the informer
            # sees it handed to the migration) does not hold this host.
            return
        self._unassume(instance_id)   # a second selection replaces the first
        amount = (want.vcpus, want.memory_mb, want.disk_gb)
        deadline = time.monotonic() + self.ASSUME_SECONDS
        self.assumed[instance_id] = (host, amount, deadline)
        heapq.heappush(self._deadlines, (deadline, instance_id))
        self._pend(host, amount, +1)

    def _unassume(self, instance_id: str) -> None:
        assumed = self.assumed.pop(instance_id, None)
        if assumed is not None:
            host, amount, _ = assumed
            self._pend(host, amount, -1)

    def _pend(self, host: str, amount: tuple[int, int, int], sign: int) -> None:
        pending = self.pending.setdefault(host, [0, 0, 0])
        for i in range(3):
            pending[i] += sign * amount[i]
        if pending == [0, 0, 0]:
            del self.pending[host]
        self._recount(host)

    def expire(self) -> None:
        """Drop assumptions whose claim never came, soonest deadline first;
        entries of assumptions already ended (claimed, replaced) are skipped."""
        clock = time.monotonic()
        while self._deadlines and self._deadlines[0][0] < clock:
            deadline, instance_id = heapq.heappop(self._deadlines)
            assumed = self.assumed.get(instance_id)
            if assumed is not None and assumed[2] == deadline:
                self._unassume(instance_id)

    def host_states(self) -> list[HostState]:
        self.expire()
        return list(self.states.values())

    # ---- selection ------------------------------------------------------

    def select(self, spec, count: int, rng: random.Random) -> tuple[list[HostState], str]:
        """The `count` best hosts for `spec`, best first, and '' -- or no
        host and the name of the filter that removed the last ones."""
        chosen = self._best(spec, count, rng)
        if chosen:
            return chosen, ""
        # Nothing fits: the full pass over every host names the filter (the
        # slow path, only when the answer is 'no valid host').
        passing, reason = filter_hosts(list(self.states.values()), spec)
        return weigh(passing, rng, spec)[:count], reason

    def _best(self, spec, count: int, rng: random.Random) -> list[HostState]:
        named = named_hosts(spec)
        if named is not None:   # a forced host, same_host, hard affinity: weigh just those
            hosts = [self.states[h] for h in named if h in self.states]
            passing, _ = filter_hosts(hosts, spec)
            return weigh(passing, rng, spec)[:count]
        index = self.by_zone.get(spec.availability_zone) if spec.availability_zone else self.enabled
        if index is None:
            return []
        # The soft group weighers outrank RAM: the group's hosts go ahead of
        # the rest (soft-affinity) or behind them (soft-anti-affinity).
        ahead, behind, skip = [], [], ()
        if spec.group_policy in SOFT_POLICIES and spec.group_hosts:
            skip = set(spec.group_hosts)
            for host in skip:
                hs = self.states.get(host)
                if hs is not None and passes_all(hs, spec):
                    (ahead if soft_group_weight(hs, spec) > 0 else behind).append(hs)
            ahead, behind = weigh(ahead, rng, spec), weigh(behind, rng, spec)
        chosen = ahead[:count]
        if len(chosen) < count:
            for host in index.best_first(rng):
                if host in skip:
                    continue
                hs = self.states[host]
                if passes_all(hs, spec):
                    chosen.append(hs)
                    if len(chosen) == count:
                        break
        return (chosen + behind)[:count]


def named_hosts(spec) -> list[str] | None:
    """The only hosts a spec can land on when it names them (ForcedHostFilter,
    SameHostFilter, ServerGroupAffinityFilter), else None."""
    if spec.forced_host:
        return [spec.forced_host]
    if spec.same_host:
        return list(dict.fromkeys(spec.same_host))
    if spec.group_policy == "affinity" and spec.group_hosts:
        return list(dict.fromkeys(spec.group_hosts))
    return None
