"""ListServers with Nova's habits: names as patterns, newest first, sorts,
changes_since, and page tokens that are refused when they do not fit."""

import asyncio

import grpc
import pytest
from google.protobuf import timestamp_pb2

from stack import C, Stack, expect, user


@pytest.fixture(scope="module")
async def listed(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("list")), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        ids = []
        for name, count in (("multi", 3), ("web", 1), ("my-web", 1)):
            resp = await s.api.CreateServer(C.CreateServerRequest(
                name=name, image_ref="cirros", flavor_ref="m1.tiny", min_count=count,
                max_count=count), metadata=user())
            ids += [srv.id for srv in resp.servers]
            await asyncio.sleep(0.01)   # distinct created_at
        await s.api.CreateServer(C.CreateServerRequest(
            name="web", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user("bob", "other"))
        for server_id in ids:
            await s.wait_settled(server_id)
        yield s, ids


async def names(stack, **kw) -> list[str]:
    resp = await stack.api.ListServers(C.ListServersRequest(**kw), metadata=user())
    return [s.name for s in resp.servers]


@pytest.mark.parametrize("request_fields, expected", [
    ({"name": "multi", "sort_key": "name"}, ["multi-3", "multi-2", "multi-1"]),
    ({"name": "web"}, ["my-web", "web"]),
    ({"name": "^web$"}, ["web"]),
    ({"name": "multi-[12]", "sort_key": "name", "sort_dir": "asc"}, ["multi-1", "multi-2"]),
    # Newest first; one multi-create's servers share created_at (then by id).
    ({}, ["my-web", "web", "multi-?", "multi-?", "multi-?"]),
    ({"sort_key": "name", "sort_dir": "asc"}, ["multi-1", "multi-2", "multi-3", "my-web", "web"]),
    ({"sort_key": "name"}, ["web", "my-web", "multi-3", "multi-2", "multi-1"]),
])
async def test_filters_and_sorts(listed, request_fields, expected):
    stack, _ = listed
    got = await names(stack, **request_fields)
    if "multi-?" in expected:
        got = [n[:-1] + "?" if n.startswith("multi-") else n for n in got]
    assert got == expected


async def test_pages_walk_everything_once(listed):
    stack, ids = listed
    seen, token = [], ""
    while True:
        resp = await stack.api.ListServers(C.ListServersRequest(page_size=2, page_token=token),
                                           metadata=user())
        seen += [s.id for s in resp.servers]
        token = resp.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))


async def test_changes_since(listed):
    stack, _ = listed
    future = timestamp_pb2.Timestamp(seconds=2**33)
    assert await names(stack, changes_since=future) == []
    assert len(await names(stack, changes_since=timestamp_pb2.Timestamp(seconds=1))) == 5


async def test_bad_list_requests(listed):
    stack, _ = listed
    first = await stack.api.ListServers(C.ListServersRequest(page_size=1), metadata=user())
    cases = [
        (C.ListServersRequest(page_token="not-a-token"), "page_token"),
        # A token made for another query: another sort, another caller.
        (C.ListServersRequest(page_token=first.next_page_token, sort_key="name"), "page_token"),
        (C.ListServersRequest(name="(", page_size=1), "name"),
        (C.ListServersRequest(name="(a+)+$"), "name"),
        (C.ListServersRequest(name="x" * 101), "name"),
        (C.ListServersRequest(sort_key="flavor"), "sort_key"),
        (C.ListServersRequest(sort_dir="up"), "sort_dir"),
        (C.ListServersRequest(page_size=-1), "page_size"),
    ]
    for request, field in cases:
        await expect(stack.api.ListServers(request, metadata=user()),
                     grpc.StatusCode.INVALID_ARGUMENT, field)
    await expect(stack.api.ListServers(C.ListServersRequest(page_token=first.next_page_token),
                                       metadata=user("bob", "other")),
                 grpc.StatusCode.INVALID_ARGUMENT, "page_token")
