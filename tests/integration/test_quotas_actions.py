"""QuotaService and InstanceActionService through real gRPC, on a real etcd
with the whole stack running (one stack for the module; every test uses its
own projects)."""

import uuid

import grpc
import pytest

from nimbus import quota
from nimbus.compute.v1 import (instance_actions_pb2, instance_actions_pb2_grpc, quotas_pb2,
                               quotas_pb2_grpc)
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from stack import ADMIN, C, Stack, user, violation

Q = quotas_pb2
A = instance_actions_pb2


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("stack")), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.quotas = quotas_pb2_grpc.QuotaServiceStub(s.channel)
        s.actions = instance_actions_pb2_grpc.InstanceActionServiceStub(s.channel)
        yield s


def new_project() -> str:
    return f"proj-{uuid.uuid4().hex[:8]}"


async def create_server(stack, metadata, request_id: str) -> C.Server:
    resp = await stack.api.CreateServer(
        C.CreateServerRequest(name="acts", image_ref="cirros", flavor_ref="m1.tiny"),
        metadata=(*metadata, ("x-request-id", request_id)))
    return resp.servers[0]


async def test_admin_sets_quotas_user_reads_them_delete_restores_defaults(stack):
    project = new_project()
    me = user("bob", project)
    got = await stack.quotas.GetQuotas(Q.GetQuotasRequest(), metadata=me)
    assert got.project_id == project
    assert got.quota_set == Q.QuotaSet(**quota.DEFAULTS) and got.overrides == Q.QuotaSet()

    updated = await stack.quotas.UpdateQuotas(Q.UpdateQuotasRequest(
        project_id=project, quota_set=Q.QuotaSet(cores=4, instances=0, ram=-1)), metadata=ADMIN)
    assert updated.overrides == Q.QuotaSet(cores=4, instances=0, ram=-1)
    assert updated.quota_set.instances == 0 and updated.quota_set.key_pairs == 100
    # Only the fields given change; the rest stay.
    await stack.quotas.UpdateQuotas(Q.UpdateQuotasRequest(
        project_id=project, quota_set=Q.QuotaSet(metadata_items=3)), metadata=ADMIN)
    mine = await stack.quotas.GetQuotas(Q.GetQuotasRequest(project_id=project), metadata=me)
    assert mine.quota_set == Q.QuotaSet(**{**quota.DEFAULTS, "cores": 4, "instances": 0,
                                           "ram": -1, "metadata_items": 3})
    # The engine the create path uses sees the same limits.
    assert await quota.limits(stack.compute.store, project) == {
        **quota.DEFAULTS, "cores": 4, "instances": 0, "ram": -1, "metadata_items": 3}
    # An admin reads any project's quotas.
    assert (await stack.quotas.GetQuotas(Q.GetQuotasRequest(project_id=project),
                                         metadata=ADMIN)).quota_set.cores == 4

    deleted = await stack.quotas.DeleteQuotas(Q.DeleteQuotasRequest(project_id=project),
                                              metadata=ADMIN)
    assert deleted.quota_set == Q.QuotaSet(**quota.DEFAULTS)
    assert (await stack.quotas.GetQuotas(Q.GetQuotasRequest(), metadata=me)).quota_set == \
        Q.QuotaSet(**quota.DEFAULTS)


async def test_usage_is_readable_and_limits_below_it_need_force(stack):
    project = new_project()
    me = user("carol", project)
    # Usage is what the create/delete paths write through the engine.
    await quota.apply(stack.compute.store, project, quota.instance_deltas(2, 1024, 3))
    got = await stack.quotas.GetQuotaUsage(Q.GetQuotaUsageRequest(), metadata=me)
    assert got.project_id == project
    assert got.usage.instances == Q.QuotaDetail(limit=10, in_use=3)
    assert got.usage.cores == Q.QuotaDetail(limit=20, in_use=6)
    assert got.usage.ram == Q.QuotaDetail(limit=51200, in_use=3072)
    assert got.usage.metadata_items == Q.QuotaDetail(limit=128, in_use=0)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.quotas.UpdateQuotas(Q.UpdateQuotasRequest(
            project_id=project, quota_set=Q.QuotaSet(cores=5)), metadata=ADMIN)
    assert (err.value.code(), violation(err.value)) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                        "quota_set.cores")
    await stack.quotas.UpdateQuotas(Q.UpdateQuotasRequest(
        project_id=project, quota_set=Q.QuotaSet(cores=5), force=True), metadata=ADMIN)
    over = await stack.quotas.GetQuotaUsage(Q.GetQuotaUsageRequest(project_id=project),
                                            metadata=ADMIN)
    assert over.usage.cores == Q.QuotaDetail(limit=5, in_use=6)


async def test_actions_show_the_create_with_its_request_id(stack):
    project = new_project()
    me = user("dave", project)
    request_id = f"req-{uuid.uuid4()}"
    server = await create_server(stack, me, request_id)

    listed = await stack.actions.ListInstanceActions(
        A.ListInstanceActionsRequest(server_id=server.id), metadata=me)
    assert [(a.action, a.request_id) for a in listed.actions] == [("create", request_id)]
    action = listed.actions[0]
    assert (action.server_id, action.project_id, action.user_id) == (server.id, project, "dave")
    assert action.start_time.seconds > 0 and action.updated_at == action.start_time

    got = await stack.actions.GetInstanceAction(
        A.GetInstanceActionRequest(server_id=server.id, request_id=request_id), metadata=me)
    assert got.action.action == "create" and got.action.request_id == request_id
    # Admins see every project's actions.
    assert (await stack.actions.ListInstanceActions(
        A.ListInstanceActionsRequest(server_id=server.id), metadata=ADMIN)).actions


async def test_event_hosts_and_details_are_for_admins_only(stack):
    project = new_project()
    me = user("erin", project)
    request_id = f"req-{uuid.uuid4()}"
    server = await create_server(stack, me, request_id)
    # An event as the build path records it (written here directly).
    store = stack.compute.store
    akey = keys.action(server.id, request_id)
    found = await store.get(akey, records_pb2.InstanceAction)
    record = found.msg
    record.events.add(event="compute__do_build_and_run_instance", start_time=record.start_time,
                      finish_time=record.start_time, result="Error", host="compute-secret")
    await store.txn([], [store.put(akey, record)])

    def event(resp):
        return resp.action.events[0]

    req = A.GetInstanceActionRequest(server_id=server.id, request_id=request_id)
    mine = event(await stack.actions.GetInstanceAction(req, metadata=me))
    assert (mine.event, mine.result) == ("compute__do_build_and_run_instance", "Error")
    assert mine.host == "" and len(mine.host_id) == 56
    admin = event(await stack.actions.GetInstanceAction(req, metadata=ADMIN))
    assert admin.host == "compute-secret" and admin.host_id == mine.host_id
    # Lists carry no events.
    listed = await stack.actions.ListInstanceActions(
        A.ListInstanceActionsRequest(server_id=server.id), metadata=ADMIN)
    assert not listed.actions[0].events


@pytest.fixture(scope="module")
async def victim(stack):
    """A server of another project, and its create request id."""
    request_id = f"req-{uuid.uuid4()}"
    server = await create_server(stack, user("mallory", new_project()), request_id)
    return server.id, request_id


_OTHER = user("eve", "proj-eve")


@pytest.mark.parametrize("rpc, message, metadata, code, field", [
    # quotas: who may do what
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(project_id="proj-eve", quota_set=Q.QuotaSet(cores=99)),
     _OTHER, grpc.StatusCode.PERMISSION_DENIED, ""),
    ("quotas.DeleteQuotas", Q.DeleteQuotasRequest(project_id="proj-eve"), _OTHER,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("quotas.GetQuotas", Q.GetQuotasRequest(project_id="proj-other"), _OTHER,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("quotas.GetQuotaUsage", Q.GetQuotaUsageRequest(project_id="proj-other"), _OTHER,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("quotas.GetQuotas", Q.GetQuotasRequest(), (), grpc.StatusCode.UNAUTHENTICATED, ""),
    # quotas: bad values
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(project_id="p1", quota_set=Q.QuotaSet(cores=-2)),
     ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "quota_set.cores"),
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(project_id="p1", quota_set=Q.QuotaSet(ram=2 ** 31)),
     ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "quota_set.ram"),
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(
        project_id="p1", quota_set=Q.QuotaSet(instances=5, injected_files=-7)),
     ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "quota_set.injected_files"),
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(project_id="p1"), ADMIN,
     grpc.StatusCode.INVALID_ARGUMENT, "quota_set"),
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(quota_set=Q.QuotaSet(cores=1)), ADMIN,
     grpc.StatusCode.INVALID_ARGUMENT, "project_id"),
    ("quotas.UpdateQuotas", Q.UpdateQuotasRequest(project_id="a/b", quota_set=Q.QuotaSet(cores=1)),
     ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "project_id"),
    ("quotas.DeleteQuotas", Q.DeleteQuotasRequest(), ADMIN, grpc.StatusCode.INVALID_ARGUMENT,
     "project_id"),
    # actions: scoped to the server's project, references that do not exist
    ("actions.ListInstanceActions", A.ListInstanceActionsRequest(server_id="{server}"), _OTHER,
     grpc.StatusCode.NOT_FOUND, "server"),
    ("actions.GetInstanceAction", A.GetInstanceActionRequest(server_id="{server}",
                                                             request_id="{request}"),
     _OTHER, grpc.StatusCode.NOT_FOUND, "server"),
    ("actions.ListInstanceActions", A.ListInstanceActionsRequest(server_id=str(uuid.uuid4())),
     ADMIN, grpc.StatusCode.NOT_FOUND, "server"),
    ("actions.ListInstanceActions", A.ListInstanceActionsRequest(server_id="not-a-uuid"), ADMIN,
     grpc.StatusCode.NOT_FOUND, "server"),
    ("actions.ListInstanceActions", A.ListInstanceActionsRequest(), ADMIN,
     grpc.StatusCode.INVALID_ARGUMENT, "server_id"),
    ("actions.GetInstanceAction", A.GetInstanceActionRequest(server_id="{server}",
                                                             request_id="req-nope"),
     ADMIN, grpc.StatusCode.NOT_FOUND, "instance_action"),
    ("actions.GetInstanceAction", A.GetInstanceActionRequest(server_id="{server}"), ADMIN,
     grpc.StatusCode.INVALID_ARGUMENT, "request_id"),
])
async def test_refused(stack, victim, rpc, message, metadata, code, field):
    server_id, request_id = victim
    req = type(message)()
    req.CopyFrom(message)
    for name in ("server_id", "request_id"):
        if getattr(req, name, None) in ("{server}", "{request}"):
            setattr(req, name, server_id if getattr(req, name) == "{server}" else request_id)
    stub_name, method = rpc.split(".")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(getattr(stack, stub_name), method)(req, metadata=metadata)
    assert err.value.code() == code, err.value.details()
    assert violation(err.value) == field
