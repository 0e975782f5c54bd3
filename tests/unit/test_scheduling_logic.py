"""Pure logic: filters, weighers, resource arithmetic, the node tracker and
token parsing. No I/O."""

import random

import pytest

from nimbus import errors, resources
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.rpc.auth import Authenticator
from nimbus.services.agent.tracker import ResourceTracker
from nimbus.services.scheduler.filters import HostState, filter_hosts, weigh
from nimbus.state.v1 import records_pb2 as R


def node(host="h1", vcpus=4, memory_mb=4096, disk_gb=40, reserved_mb=0, cpu_ratio=1.0,
         ram_ratio=1.0, disabled=False):
    return R.NodeRecord(host=host, total=R.Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb),
                        reserved=R.Resources(memory_mb=reserved_mb), cpu_allocation_ratio=cpu_ratio,
                        ram_allocation_ratio=ram_ratio, disk_allocation_ratio=1.0, disabled=disabled)


def spec(vcpus=1, memory_mb=512, disk_gb=1, ignore=(), **kw):
    from nimbus.scheduler.v1 import scheduler_pb2
    return scheduler_pb2.RequestSpec(resources=R.Resources(vcpus=vcpus, memory_mb=memory_mb,
                                                           disk_gb=disk_gb), ignore_hosts=ignore, **kw)


@pytest.mark.parametrize("hs, want, passes, reason", [
    (HostState("h", node()), spec(), True, ""),
    (HostState("h", node(disabled=True)), spec(), False, "ComputeFilter"),
    (HostState("h", node(), disabled=True), spec(), False, "ComputeFilter"),
    (HostState("h", node()), spec(ignore=["h"]), False, "IgnoreHostsFilter"),
    (HostState("h", node(vcpus=1)), spec(vcpus=2), False, "VCPUFilter"),
    (HostState("h", node(vcpus=1, cpu_ratio=4.0)), spec(vcpus=4), True, ""),
    (HostState("h", node(memory_mb=1024, reserved_mb=600)), spec(memory_mb=512), False, "RamFilter"),
    (HostState("h", node(memory_mb=1024), used_memory_mb=512), spec(memory_mb=512), True, ""),
    (HostState("h", node(memory_mb=1024), used_memory_mb=513), spec(memory_mb=512), False, "RamFilter"),
    (HostState("h", node(memory_mb=1024, ram_ratio=1.5), used_memory_mb=1024), spec(memory_mb=512), True, ""),
    (HostState("h", node(disk_gb=10), used_disk_gb=10), spec(disk_gb=1), False, "DiskFilter"),
    (HostState("h", node()), spec(forced_host="other"), False, "ForcedHostFilter"),
    (HostState("h", node()), spec(forced_host="h"), True, ""),
    (HostState("h", node(), zone="az1"), spec(availability_zone="az2"), False, "AvailabilityZoneFilter"),
    (HostState("h", node(), zone="az1"), spec(availability_zone="az1"), True, ""),
    (HostState("h", node()), spec(group_policy="anti-affinity", group_hosts=["h"]), False,
     "ServerGroupAntiAffinityFilter"),
    (HostState("h", node()), spec(group_policy="anti-affinity", group_hosts=["h"],
                                  group_max_per_host=2), True, ""),
    (HostState("h", node()), spec(group_policy="affinity", group_hosts=["g"]), False,
     "ServerGroupAffinityFilter"),
    (HostState("h", node()), spec(group_policy="affinity", group_hosts=[]), True, ""),
    (HostState("h", node()), spec(group_policy="soft-anti-affinity", group_hosts=["h"]), True, ""),
    (HostState("h", node()), spec(same_host=["g"]), False, "SameHostFilter"),
    (HostState("h", node()), spec(different_host=["h"]), False, "DifferentHostFilter"),
])
def test_filters(hs, want, passes, reason):
    passing, why = filter_hosts([hs], want)
    assert bool(passing) == passes and why == reason


def test_weigher_spreads_by_free_memory_fraction():
    big_busy = HostState("a", node("a", memory_mb=8192), used_memory_mb=6144)
    small_idle = HostState("b", node("b", memory_mb=2048))
    assert [h.host for h in weigh([big_busy, small_idle], random.Random(1))] == ["b", "a"]


@pytest.mark.parametrize("policy, expected_first", [
    ("soft-affinity", "a"), ("soft-anti-affinity", "b")])
def test_soft_group_weighers(policy, expected_first):
    hosts = [HostState("a", node("a")), HostState("b", node("b"))]
    want = spec(group_policy=policy, group_hosts=["a", "a"])
    assert weigh(hosts, random.Random(0), want)[0].host == expected_first


def test_weigher_breaks_ties_at_random():
    hosts = [HostState(f"h{i}", node(f"h{i}")) for i in range(5)]
    firsts = {weigh(hosts, random.Random(seed))[0].host for seed in range(50)}
    assert len(firsts) > 1


def test_flavor_resources_count_ephemeral_and_swap():
    f = C.Flavor(vcpus=2, ram_mb=1024, disk_gb=10, ephemeral_gb=5, swap_mb=1536)
    assert resources.for_flavor(f) == R.Resources(vcpus=2, memory_mb=1024, disk_gb=17)


def test_tracker_claims_within_limits_and_is_idempotent():
    tracker = ResourceTracker(node(memory_mb=1024))
    flavor = C.Flavor(vcpus=1, ram_mb=512, disk_gb=1)
    a, b, c = (C.Server(id=i, flavor=flavor) for i in "abc")
    assert tracker.claim(a) and tracker.claim(a) and tracker.claim(b)
    assert not tracker.claim(c)
    tracker.drop("a")
    assert tracker.claim(c)
    assert tracker.used().memory_mb == 1024


@pytest.mark.parametrize("metadata, outcome", [
    ((("authorization", "Bearer alice:demo"),), ("alice", "demo", False)),
    ((("authorization", "Bearer admin:ops"),), ("admin", "ops", True)),
    ((("authorization", "bearer bob:p"),), ("bob", "p", False)),
    ((("authorization", "Bearer s3cret"),), ("service", "service", True)),
    ((), errors.Unauthenticated),
    ((("authorization", "Basic abc"),), errors.Unauthenticated),
    ((("authorization", "Bearer alice"),), errors.Unauthenticated),
    ((("authorization", "Bearer :demo"),), errors.Unauthenticated),
    ((("authorization", "Bearer a/b:demo"),), errors.Unauthenticated),
    ((("authorization", "Bearer alice:de/mo"),), errors.Unauthenticated),
])
def test_noauth_tokens(metadata, outcome):
    auth = Authenticator(noauth=True, service_token="s3cret")
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            auth.authenticate(metadata)
    else:
        who = auth.authenticate(metadata)
        assert (who.user_id, who.project_id, who.is_admin) == outcome


def test_service_token_only_server_refuses_user_tokens():
    auth = Authenticator(service_token="s3cret")
    with pytest.raises(errors.Unauthenticated):
        auth.authenticate((("authorization", "Bearer admin:admin"),))


def test_log_redaction_blanks_secrets():
    from nimbus import log
    event = {"event": "x", "admin_pass": "hunter2", "service_token": "t", "host": "h1"}
    out = log._redact(None, "info", dict(event))
    assert out["admin_pass"] == out["service_token"] == log.REDACTED and out["host"] == "h1"
