"""The quota engine (nimbus.quota): pure rules table-driven, the etcd parts
(plan, plan_fit, apply, limits) against the session's real etcd, each test
under its own key prefix."""

import asyncio
import types
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2

from nimbus import errors, quota
from nimbus.compute.v1 import compute_pb2, quotas_pb2
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import ExtraCompareFailed, Store

D = quota.DEFAULTS


def project() -> str:
    return f"p-{uuid.uuid4().hex[:6]}"


# ---- pure rules ----------------------------------------------------------------

@pytest.mark.parametrize("limits, in_use, deltas, over", [
    ({}, {}, {"instances": 1}, []),
    ({}, {"instances": 9}, {"instances": 1}, []),
    ({}, {"instances": 10}, {"instances": 1}, ["instances"]),
    ({}, {"cores": 18}, {"instances": 1, "cores": 4, "ram": 512}, ["cores"]),
    ({}, {"cores": 18, "ram": 51200}, {"instances": 1, "cores": 4, "ram": 1}, ["cores", "ram"]),
    ({"cores": -1}, {"cores": 10 ** 9}, {"cores": 10 ** 6}, []),          # unlimited
    ({"instances": 0}, {}, {"instances": 1}, ["instances"]),             # zero: nothing
    ({"instances": 2}, {"instances": 5}, {"instances": -1}, []),         # release above a lowered limit
    ({"instances": 2}, {"instances": 5}, {"instances": 0}, []),
    ({"cores": 4}, {"cores": 4, "ram": 100}, {"cores": -2, "ram": 50}, []),  # resize: mixed signs
])
def test_violations(limits, in_use, deltas, over):
    found = quota.violations({**D, **limits}, in_use, deltas)
    assert [v.resource for v in found] == over
    for v in found:
        assert (v.limit, v.in_use, v.requested) == (
            {**D, **limits}[v.resource], in_use.get(v.resource, 0), deltas[v.resource])


@pytest.mark.parametrize("in_use, deltas, after", [
    ({}, {"instances": 2, "cores": 4}, {"instances": 2, "cores": 4}),
    ({"instances": 1, "cores": 2}, {"instances": -3, "cores": -1}, {"instances": 0, "cores": 1}),
    ({"ram": 10}, {}, {"ram": 10}),
])
def test_apply_deltas_clamps_releases_at_zero(in_use, deltas, after):
    assert quota.apply_deltas(in_use, deltas) == {r: after.get(r, 0) for r in quota.COUNTED}


@pytest.mark.parametrize("limits, in_use, per_item, max_count, fits", [
    ({}, {}, {"instances": 1, "cores": 1, "ram": 512}, 5, 5),
    ({}, {"instances": 7}, {"instances": 1}, 5, 3),
    ({}, {}, {"instances": 1, "cores": 8}, 5, 2),                       # 20 cores // 8
    ({}, {"ram": 50000}, {"instances": 1, "ram": 512}, 5, 2),          # 1200 MB left
    ({"instances": -1, "cores": -1, "ram": -1}, {}, {"instances": 1, "cores": 64}, 40, 40),
    ({"instances": 3}, {"instances": 5}, {"instances": 1}, 2, 0),      # already over
    ({}, {}, {"instances": 1, "cores": 0}, 4, 4),                       # 0 per item: no bound
])
def test_fit_count(limits, in_use, per_item, max_count, fits):
    assert quota.fit_count({**D, **limits}, in_use, per_item, max_count) == fits


def _files(*specs):
    return [types.SimpleNamespace(path=p, contents=c) for p, c in specs]


@pytest.mark.parametrize("call, resource, field", [
    (lambda l: quota.check_metadata(l, {f"k{i}": "v" for i in range(129)}, project="p"),
     "metadata_items", "metadata"),
    (lambda l: quota.check_metadata(l, {"k": "v"}, project="p"), None, None),
    (lambda l: quota.check_personality(l, _files(*[("/a", b"x")] * 6), project="p"),
     "injected_files", "personality"),
    (lambda l: quota.check_personality(l, _files(("/a", b"x"), ("/" + "p" * 255, b"")), project="p"),
     "injected_file_path_bytes", "personality[1].path"),
    (lambda l: quota.check_personality(l, _files(("/é" * 128, b"")), project="p"),  # 257 bytes UTF-8
     "injected_file_path_bytes", "personality[0].path"),
    (lambda l: quota.check_personality(l, _files(("/a", b"x" * 10241)), project="p"),
     "injected_file_content_bytes", "personality[0].contents"),
    (lambda l: quota.check_personality(l, _files(("/a", "x" * 10240)), project="p"), None, None),
    (lambda l: quota.check_personality(l, [], project="p"), None, None),
    (lambda l: quota.check_server_group_members(l, 9, 2, project="p"),
     "server_group_members", "scheduler_hints.group"),
    (lambda l: quota.check_server_group_members(l, 8, 2, project="p"), None, None),
    (lambda l: quota.check_metadata({**l, "metadata_items": -1}, {str(i): "" for i in range(999)},
                                    project="p"), None, None),
])
def test_per_request_checks(call, resource, field):
    if resource is None:
        call(dict(D))
        return
    with pytest.raises(errors.QuotaExceeded) as err:
        call(dict(D))
    assert err.value.resources == [resource] and err.value.field == field
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_quota_exceeded_details_name_resource_limit_in_use_and_requested():
    exc = errors.QuotaExceeded("demo", [errors.QuotaViolation("cores", 20, 18, 4),
                                        errors.QuotaViolation("ram", 51200, 51000, 512)],
                               field="flavor_ref")
    assert exc.message.startswith("Quota exceeded for cores: Requested 4, but already used 18 of 20")
    failure, info, bad = exc.details()
    assert isinstance(failure, error_details_pb2.QuotaFailure)
    v = failure.violations[0]
    assert (v.subject, v.quota_metric, v.quota_value) == ("project:demo", "nimbus.dev/cores", 20)
    assert "Requested 4" in v.description and "18 of 20" in v.description
    assert failure.violations[1].quota_metric == "nimbus.dev/ram"
    assert info.reason == "QUOTA_EXCEEDED"
    assert (info.metadata["cores_limit"], info.metadata["cores_in_use"],
            info.metadata["cores_requested"]) == ("20", "18", "4")
    assert bad.field_violations[0].field == "flavor_ref"
    assert len(errors.QuotaExceeded("demo", [errors.QuotaViolation("cores", 1, 0, 2)]).details()) == 2


@pytest.mark.parametrize("values, field", [
    ({"cores": -2}, "quota_set.cores"),
    ({"ram": 2 ** 31}, "quota_set.ram"),
    ({"bogus": 1}, "quota_set.bogus"),
])
def test_validate_limits(values, field):
    with pytest.raises(errors.InvalidArgument) as err:
        quota.validate_limits(values)
    assert err.value.field == field


def test_counted_resources_only_in_plans():
    with pytest.raises(ValueError):
        quota._counted({"metadata_items": 1})


# ---- against etcd ----------------------------------------------------------------

async def test_limits_default_then_overrides_then_back(store):
    p = project()
    assert await quota.limits(store, p) == D
    snap = await quota.set_limits(store, p, {"cores": 4, "instances": 0})
    assert snap.overrides == {"cores": 4, "instances": 0}
    assert await quota.limits(store, p) == {**D, "cores": 4, "instances": 0}
    await quota.set_limits(store, p, {"ram": -1})      # merges
    assert await quota.limits(store, p) == {**D, "cores": 4, "instances": 0, "ram": -1}
    await quota.delete_limits(store, p)
    assert await quota.limits(store, p) == D


async def test_plan_consumes_in_the_callers_txn_and_releases_clamp(store):
    p = project()
    plan = await quota.plan(store, p, quota.instance_deltas(2, 1024, 3))
    assert plan.revision == 0 and plan.in_use == {r: 0 for r in quota.COUNTED}
    assert len(plan.compares) == 1 and len(plan.ops) == 1
    # Nothing is written until the caller's txn runs.
    assert await store.get(keys.usage(p), quotas_pb2.QuotaUsage) is None
    resp = await store.txn(plan.compares, [*plan.ops, store.put("mine/x", quotas_pb2.QuotaUsage())])
    assert resp.succeeded
    assert await quota.usage(store, p) == {"instances": 3, "cores": 6, "ram": 3072,
                                           "key_pairs": 0, "server_groups": 0,
                                           "volumes": 0, "gigabytes": 0, "snapshots": 0}
    # The same plan again loses: the usage moved.
    resp = await store.txn(plan.compares, plan.ops, plan.failure_ops)
    assert not resp.succeeded and plan.lost(resp)
    # Releasing more than used clamps at 0, and never fails on a lowered limit.
    await quota.set_limits(store, p, {"cores": 1}, force=True)
    await quota.apply(store, p, quota.instance_deltas(2, 1024, -5))
    assert await quota.usage(store, p) == {r: 0 for r in quota.COUNTED}
    # Nothing to change: no compare, no op.
    noop = await quota.plan(store, p, {"instances": -1})
    assert noop.compares == [] and noop.ops == []


async def test_plan_refuses_with_every_violation_and_writes_nothing(store):
    p = project()
    await quota.apply(store, p, quota.instance_deltas(4, 4096, 4))
    with pytest.raises(errors.QuotaExceeded) as err:
        await quota.plan(store, p, quota.instance_deltas(5, 40000, 1))
    assert [(v.resource, v.limit, v.in_use, v.requested) for v in err.value.violations] == [
        ("cores", 20, 16, 5), ("ram", 51200, 16384, 40000)]
    assert err.value.project_id == p
    assert (await quota.usage(store, p))["instances"] == 4


async def test_plan_fit_takes_as_many_as_fit_else_fails_for_min_count(store):
    p = project()
    await quota.set_limits(store, p, {"instances": 5, "cores": 8})
    per_item = quota.instance_deltas(2, 512)
    assert await quota.max_fit(store, p, per_item, 1, 10) == 4            # cores: 8 // 2
    plan = await quota.plan_fit(store, p, per_item, 2, 3)
    assert plan.count == 3 and plan.after["cores"] == 6
    assert (await store.txn(plan.compares, plan.ops)).succeeded
    assert await quota.max_fit(store, p, per_item, 1, 10) == 1
    with pytest.raises(errors.QuotaExceeded) as err:
        await quota.plan_fit(store, p, per_item, 2, 4)
    # Nova reports the shortfall for min_count.
    assert [(v.resource, v.in_use, v.requested) for v in err.value.violations] == [("cores", 6, 4)]
    with pytest.raises(ValueError):
        await quota.plan_fit(store, p, per_item, 3, 2)


async def test_apply_tells_the_callers_compare_from_a_usage_race(store):
    p = project()
    key = "keypairs/alice/k1"
    record = quotas_pb2.QuotaUsage()
    await quota.apply(store, p, {"key_pairs": 1}, compares=[store.mod_is(key, 0)],
                      ops=[store.put(key, record)])
    with pytest.raises(ExtraCompareFailed):
        await quota.apply(store, p, {"key_pairs": 1}, compares=[store.mod_is(key, 0)],
                          ops=[store.put(key, record)])
    assert (await quota.usage(store, p))["key_pairs"] == 1


async def test_set_limits_below_usage_needs_force(store):
    p = project()
    await quota.apply(store, p, {"instances": 3})
    with pytest.raises(errors.InvalidArgument) as err:
        await quota.set_limits(store, p, {"instances": 2})
    assert err.value.field == "quota_set.instances"
    await quota.set_limits(store, p, {"instances": 3})
    await quota.set_limits(store, p, {"instances": 1}, force=True)
    assert (await quota.limits(store, p))["instances"] == 1


async def test_race_twenty_creates_against_a_limit_of_seven(etcd, store):
    """20 concurrent callers, each plan()+txn-with-retry for one instance
    (and its record) against instances=7: exactly 7 succeed."""
    p = project()
    await quota.set_limits(store, p, {"instances": 7})
    stores = [store] + [await Store.connect(etcd.endpoint, prefix=store.prefix) for _ in range(3)]
    attempts = []

    async def create(i: int) -> bool:
        s = stores[i % len(stores)]
        key = f"instances/{i}"
        while True:
            try:
                plan = await quota.plan(s, p, {"instances": 1})
            except errors.QuotaExceeded:
                return False
            attempts.append(i)
            resp = await s.txn([*plan.compares, s.mod_is(key, 0)],
                               [*plan.ops, s.put(key, quotas_pb2.QuotaUsage())], plan.failure_ops)
            if resp.succeeded:
                return True
            assert plan.lost(resp)

    try:
        results = await asyncio.gather(*(create(i) for i in range(20)))
    finally:
        for s in stores[1:]:
            await s.close()
    assert sum(results) == 7
    assert (await quota.usage(store, p))["instances"] == 7
    assert await store.count("instances/") == 7
    assert len(attempts) > 7        # the races really happened


async def test_race_multi_creates_fill_the_quota_exactly(store):
    p = project()
    await quota.set_limits(store, p, {"instances": -1, "cores": 20})
    per_item = {"instances": 1, "cores": 1}

    async def create() -> int:
        while True:
            try:
                plan = await quota.plan_fit(store, p, per_item, 1, 3)
            except errors.QuotaExceeded:
                return 0
            resp = await store.txn(plan.compares, plan.ops, plan.failure_ops)
            if resp.succeeded:
                return plan.count

    counts = await asyncio.gather(*(create() for _ in range(10)))
    assert sum(counts) == 20 and counts.count(0) >= 2
    assert (await quota.usage(store, p))["cores"] == 20


async def test_recount_instances_from_records(store):
    p = project()
    flavor = compute_pb2.Flavor(vcpus=2, ram_mb=256)
    ops = [store.put(keys.instance(str(uuid.uuid4())), records_pb2.InstanceRecord(
        server=compute_pb2.Server(project_id=owner, flavor=flavor))) for owner in (p, p, "other")]
    await store.txn([], ops)
    await quota.apply(store, p, {"instances": 9, "key_pairs": 2})   # drifted
    assert await quota.recount_instances(store, p) == {
        "instances": 2, "cores": 4, "ram": 512, "key_pairs": 2, "server_groups": 0,
        "volumes": 0, "gigabytes": 0, "snapshots": 0}
    assert (await quota.usage(store, p))["instances"] == 2
