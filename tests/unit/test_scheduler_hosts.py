"""The scheduler's incremental host view and its index: after any sequence of
informer events its host states equal the ones rebuilt from the informers'
items (as the scheduler did per call before), and `select` answers what
filter_hosts + weigh over every host answer, ties aside. No I/O: events go
through the informers' own emit path, without etcd."""

import random

import pytest

from nimbus.compute.v1 import aggregates_pb2
from nimbus.scheduler.v1 import scheduler_pb2
from nimbus.services.scheduler.filters import (HostState, filter_hosts, passes_all, ram_weight,
                                               soft_group_weight)
from nimbus.services.scheduler.host_manager import DEFAULT_ZONE, HostManager
from nimbus.services.scheduler.index import WeightIndex
from nimbus.state.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.informer import DELETED, UPSERT
from nimbus.store.store import Versioned


class Feed:
    """Puts and deletes records through an informer as a watch would."""

    def __init__(self):
        self.revision = 0

    def put(self, informer, key, msg):
        self.revision += 1
        old = informer.items.get(key)
        new = informer.items[key] = Versioned(msg, self.revision)
        informer._emit(UPSERT, key, new, old)

    def delete(self, informer, key):
        old = informer.items.pop(key, None)
        if old is not None:
            informer._emit(DELETED, key, None, old)


def node(host, memory_mb=4096, vcpus=4, disk_gb=40, disabled=False, ram_ratio=1.0):
    return R.NodeRecord(host=host, total=R.Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb),
                        cpu_allocation_ratio=1.0, ram_allocation_ratio=ram_ratio,
                        disk_allocation_ratio=1.0, disabled=disabled)


def rebuilt(hm: HostManager) -> dict:
    """The host states as the scheduler rebuilt them per call before it kept
    them incrementally: the oracle."""
    zone_of = {host: agg.msg.availability_zone for agg in hm.aggregates.items.values()
               if agg.msg.availability_zone for host in agg.msg.hosts}
    used: dict[str, list[int]] = {}
    for a in hm.allocations.items.values():
        u = used.setdefault(a.msg.host, [0, 0, 0])
        u[0] += a.msg.resources.vcpus
        u[1] += a.msg.resources.memory_mb
        u[2] += a.msg.resources.disk_gb
    states = {}
    for v in hm.nodes.items.values():
        u = used.get(v.msg.host, [0, 0, 0])
        switch = hm.statuses.items.get(keys.compute_service(v.msg.host))
        states[v.msg.host] = HostState(v.msg.host, v.msg, *u, zone_of.get(v.msg.host, DEFAULT_ZONE),
                                       disabled=switch is not None and switch.msg.disabled)
    for host, (vcpus, memory_mb, disk_gb), _ in hm.assumed.values():
        if host in states:
            states[host].consume(R.Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb))
    return states


def view(states) -> dict:
    return {h: (s.used_vcpus, s.used_memory_mb, s.used_disk_gb, s.zone, s.disabled,
                s.node.disabled, s.capacity) for h, s in states.items()}


def key_of(hs, spec):
    return (soft_group_weight(hs, spec), ram_weight(hs))


def spec(rng: random.Random, hosts: list[str], **kw):
    s = scheduler_pb2.RequestSpec(
        instance_id=f"i-{rng.random()}",
        resources=R.Resources(vcpus=rng.choice([1, 1, 2, 4]), memory_mb=rng.choice([512, 512, 2048, 8192]),
                              disk_gb=rng.choice([1, 10, 30])), **kw)
    pick = lambda n: rng.sample(hosts, min(n, len(hosts)))  # noqa: E731
    choice = rng.randrange(12)
    if choice == 0:
        s.availability_zone = rng.choice(["az1", "az2", DEFAULT_ZONE, "nowhere"])
    elif choice == 1:
        s.ignore_hosts.extend(pick(3))
    elif choice == 2:
        s.different_host.extend(pick(2))
    elif choice == 3:
        s.same_host.extend(pick(3))
    elif choice == 4:
        s.forced_host = rng.choice(hosts + ["nope"])
    elif choice in (5, 6, 7, 8):
        s.group_policy = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"][choice - 5]
        s.group_hosts.extend(rng.choice(hosts) for _ in range(rng.randrange(4)))
        s.group_max_per_host = rng.choice([0, 2])
    return s


def churn(hm: HostManager, feed: Feed, rng: random.Random, hosts: list[str], steps: int) -> None:
    """Random node, allocation, aggregate, switch and assumption events."""
    for _ in range(steps):
        host = rng.choice(hosts)
        what = rng.randrange(10)
        if what == 0:
            feed.put(hm.nodes, keys.node(host), node(host, memory_mb=rng.choice([2048, 4096, 16384]),
                                                     disabled=rng.random() < 0.1))
        elif what == 1:
            feed.delete(hm.nodes, keys.node(host))
        elif what in (2, 3, 4):
            consumer = f"c{rng.randrange(40)}"
            feed.put(hm.allocations, keys.allocation(host, consumer),
                     R.Allocation(consumer_id=consumer, host=host, resources=R.Resources(
                         vcpus=1, memory_mb=rng.choice([512, 1024]), disk_gb=1)))
        elif what == 5 and hm.allocations.items:
            feed.delete(hm.allocations, rng.choice(sorted(hm.allocations.items)))
        elif what == 6:
            agg = f"a{rng.randrange(3)}"
            feed.put(hm.aggregates, f"{keys.AGGREGATES}{agg}", aggregates_pb2.Aggregate(
                id=agg, name=agg, availability_zone=rng.choice(["", "az1", "az2"]),
                hosts=rng.sample(hosts, rng.randrange(4))))
        elif what == 7:
            feed.put(hm.statuses, keys.compute_service(host),
                     R.ComputeServiceStatus(host=host, disabled=rng.random() < 0.5))
        elif what == 8:
            hm.assume(f"c{rng.randrange(60)}", host, R.Resources(vcpus=1, memory_mb=512, disk_gb=1))
        else:
            feed.delete(hm.statuses, keys.compute_service(host))


@pytest.mark.parametrize("seed", range(6))
def test_incremental_states_equal_rebuilt_ones_and_select_equals_the_full_pass(seed):
    rng = random.Random(seed)
    hm, feed = HostManager(None), Feed()
    hosts = [f"h{i:02d}" for i in range(30)]
    for h in hosts:
        feed.put(hm.nodes, keys.node(h), node(h, memory_mb=rng.choice([2048, 4096, 16384])))
    for _ in range(40):
        churn(hm, feed, rng, hosts, 25)
        assert view(hm.states) == view(rebuilt(hm))
        for _ in range(10):
            want, count = spec(rng, hosts), rng.choice([1, 3])
            chosen, reason = hm.select(want, count, random.Random(rng.random()))
            passing, ref_reason = filter_hosts(list(rebuilt(hm).values()), want)
            ref = sorted((key_of(hs, want) for hs in passing), reverse=True)[:count]
            assert [key_of(hs, want) for hs in chosen] == ref, want
            assert all(passes_all(hs, want) for hs in chosen)
            assert len({hs.host for hs in chosen}) == len(chosen)
            assert reason == (ref_reason if not passing else "")


def test_assumptions_count_until_the_claim_appears_or_they_expire():
    hm, feed = HostManager(None), Feed()
    feed.put(hm.nodes, keys.node("a"), node("a"))
    hm.assume("i1", "a", R.Resources(vcpus=1, memory_mb=1024, disk_gb=1))
    assert hm.states["a"].used_memory_mb == 1024
    # The claim lands elsewhere: the assumption on "a" ends, the usage moves.
    feed.put(hm.nodes, keys.node("b"), node("b"))
    feed.put(hm.allocations, keys.allocation("b", "i1"),
             R.Allocation(consumer_id="i1", host="b", resources=R.Resources(memory_mb=1024)))
    assert (hm.states["a"].used_memory_mb, hm.states["b"].used_memory_mb) == (0, 1024)
    hm.assume("i1", "b", R.Resources(memory_mb=1024))   # a late duplicate: already counted
    assert hm.states["b"].used_memory_mb == 1024
    # Another host for a consumer allocated elsewhere (a move's destination,
    # while the source allocation still names it) is held.
    hm.assume("i1", "a", R.Resources(memory_mb=1024))
    assert hm.states["a"].used_memory_mb == 1024
    hm._unassume("i1")
    hm.assume("i2", "a", R.Resources(memory_mb=512))
    hm.assume("i2", "b", R.Resources(memory_mb=512))    # a second selection replaces the first
    assert (hm.states["a"].used_memory_mb, hm.states["b"].used_memory_mb) == (0, 1536)
    hm.ASSUME_SECONDS = -1.0
    hm.assume("i3", "a", R.Resources(memory_mb=256))
    assert hm.states["a"].used_memory_mb == 256
    hm.expire()
    assert "i3" not in hm.assumed and hm.states["a"].used_memory_mb == 0
    assert hm.states["b"].used_memory_mb == 1536    # i2 still within its time


def test_a_node_seen_after_its_allocations_and_switch_starts_counted():
    hm, feed = HostManager(None), Feed()
    feed.put(hm.allocations, keys.allocation("a", "i1"),
             R.Allocation(consumer_id="i1", host="a", resources=R.Resources(vcpus=2, memory_mb=1024)))
    feed.put(hm.statuses, keys.compute_service("a"), R.ComputeServiceStatus(host="a", disabled=True))
    feed.put(hm.aggregates, f"{keys.AGGREGATES}x", aggregates_pb2.Aggregate(
        id="x", availability_zone="az9", hosts=["a"]))
    feed.put(hm.nodes, keys.node("a"), node("a"))
    hs = hm.states["a"]
    assert (hs.used_vcpus, hs.used_memory_mb, hs.disabled, hs.zone) == (2, 1024, True, "az9")
    assert "a" not in hm.enabled    # ComputeFilter as a prefilter
    feed.delete(hm.statuses, keys.compute_service("a"))
    assert "a" in hm.enabled and "a" in hm.by_zone["az9"]
    feed.delete(hm.nodes, keys.node("a"))    # its lease ended
    assert "a" not in hm.states and "a" not in hm.enabled and "az9" not in hm.by_zone


def test_a_batch_spreads_over_equal_hosts():
    hm, feed = HostManager(None), Feed()
    for i in range(10):
        feed.put(hm.nodes, keys.node(f"h{i}"), node(f"h{i}", memory_mb=65536, vcpus=64, disk_gb=1000))
    rng = random.Random(3)
    placed: dict[str, int] = {}
    for n in range(100):
        want = scheduler_pb2.RequestSpec(instance_id=f"i{n}", resources=R.Resources(
            vcpus=1, memory_mb=512, disk_gb=1))
        [first, alternate], _ = hm.select(want, 2, rng)
        assert first.host != alternate.host
        hm.assume(want.instance_id, first.host, want.resources)
        placed[first.host] = placed.get(first.host, 0) + 1
    assert sorted(placed.values()) == [10] * 10


def test_weight_index_walks_best_first_with_ties_in_random_order():
    index = WeightIndex()
    for host, weight in [("a", 0.5), ("b", 0.9), ("c", 0.5), ("d", 0.1), ("e", 0.5)]:
        index.put(host, weight)
    index.put("d", 0.95)     # moved
    index.discard("b")
    index.discard("zz")      # absent: nothing to do
    firsts_of_ties = set()
    for seed in range(40):
        walk = list(index.best_first(random.Random(seed)))
        assert walk[0] == "d" and sorted(walk[1:]) == ["a", "c", "e"]
        firsts_of_ties.add(walk[1])
    assert firsts_of_ties == {"a", "c", "e"}
    assert len(index) == 4 and "b" not in index
    for host in "acde":
        index.discard(host)
    assert len(index) == 0 and list(index.best_first(random.Random(0))) == []
