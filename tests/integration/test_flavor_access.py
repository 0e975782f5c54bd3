"""Private flavors (Nova's flavor access): seen and booted only by the
projects given access, and by admins."""

import grpc
import pytest

from stack import ADMIN, C, Stack, expect, user

ALICE, BOB = user("alice", "demo"), user("bob", "other")


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.api.CreateFlavor(C.CreateFlavorRequest(flavor=C.Flavor(
            name="gold", vcpus=1, ram_mb=512, disk_gb=1, is_public=False)), metadata=ADMIN)
        await s.image(qcow2_image)
        yield s


async def visible(stack, who) -> list[str]:
    return [f.name for f in (await stack.api.ListFlavors(C.ListFlavorsRequest(), metadata=who)).flavors]


async def boot(stack, who):
    return await stack.api.CreateServer(C.CreateServerRequest(
        name="g", image_ref="cirros", flavor_ref="gold"), metadata=who)


async def test_private_flavor_needs_access(stack):
    tiny = (await stack.api.GetFlavor(C.GetFlavorRequest(ref="m1.tiny"), metadata=ALICE)).flavor
    assert tiny.is_public   # Nova's default
    assert "gold" not in await visible(stack, ALICE)
    assert "gold" in await visible(stack, ADMIN)
    await expect(boot(stack, ALICE), grpc.StatusCode.NOT_FOUND, "flavor")
    await expect(stack.api.GetFlavor(C.GetFlavorRequest(ref="gold"), metadata=ALICE),
                 grpc.StatusCode.NOT_FOUND, "flavor")

    granted = await stack.api.AddFlavorAccess(C.AddFlavorAccessRequest(
        flavor_ref="gold", project_id="demo"), metadata=ADMIN)
    assert list(granted.project_ids) == ["demo"]
    assert "gold" in await visible(stack, ALICE) and "gold" not in await visible(stack, BOB)
    server = (await boot(stack, ALICE)).servers[0]
    assert (await stack.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
    await expect(boot(stack, BOB), grpc.StatusCode.NOT_FOUND, "flavor")

    left = await stack.api.RemoveFlavorAccess(C.RemoveFlavorAccessRequest(
        flavor_ref="gold", project_id="demo"), metadata=ADMIN)
    assert list(left.project_ids) == []
    await expect(boot(stack, ALICE), grpc.StatusCode.NOT_FOUND, "flavor")


@pytest.mark.parametrize("method, request_, who, code, field", [
    ("AddFlavorAccess", C.AddFlavorAccessRequest(flavor_ref="gold", project_id="demo"), ALICE,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("AddFlavorAccess", C.AddFlavorAccessRequest(flavor_ref="gold"), ADMIN,
     grpc.StatusCode.INVALID_ARGUMENT, "project_id"),
    ("AddFlavorAccess", C.AddFlavorAccessRequest(flavor_ref="m1.tiny", project_id="demo"), ADMIN,
     grpc.StatusCode.FAILED_PRECONDITION, ""),
    ("AddFlavorAccess", C.AddFlavorAccessRequest(flavor_ref="nope", project_id="demo"), ADMIN,
     grpc.StatusCode.NOT_FOUND, "flavor"),
    ("RemoveFlavorAccess", C.RemoveFlavorAccessRequest(flavor_ref="gold", project_id="demo"),
     ADMIN, grpc.StatusCode.NOT_FOUND, "flavor_access"),
    ("ListFlavorAccess", C.ListFlavorAccessRequest(flavor_ref="gold"), ALICE,
     grpc.StatusCode.PERMISSION_DENIED, ""),
])
async def test_bad_flavor_access_requests(stack, method, request_, who, code, field):
    await expect(getattr(stack.api, method)(request_, metadata=who), code, field)
