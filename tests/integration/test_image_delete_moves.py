"""DeleteImage and the servers booted from it, on the local (qcow2) backend
with 2 simulated hosts: a server's root disk is an overlay on its host's
cached copy of the image, and a move to the other host fetches that base
from the image service. So DeleteImage refuses (FAILED_PRECONDITION naming
the server) while such a server exists, the server then resizes and
migrates as before, and once it is deleted the image goes."""

import grpc
import pytest

from stack import ADMIN, C, expect, user
from test_resize import ACTIVE, RESIZED, boot, settled, start


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    s = await start(etcd, str(tmp_path), qcow2_image)
    yield s
    await s.__aexit__(None, None, None)


async def _image_id(stack) -> str:
    return (await stack.api.GetImage(C.GetImageRequest(ref="cirros"), metadata=ADMIN)).image.id


@pytest.mark.parametrize("move", ["resize", "migrate"])
async def test_an_image_in_use_is_kept_and_the_server_moves(stack, move):
    server = await boot(stack)
    image_id = await _image_id(stack)
    err = await expect(stack.api.DeleteImage(C.DeleteImageRequest(ref=image_id), metadata=ADMIN),
                       grpc.StatusCode.FAILED_PRECONDITION)
    assert server.id in err.details()
    # The move fetches the base from the image service on the other host.
    if move == "resize":
        await stack.api.ResizeServer(C.ResizeServerRequest(id=server.id, flavor_ref="m1.small"),
                                     metadata=user())
    else:
        await stack.api.MigrateServer(C.MigrateServerRequest(id=server.id), metadata=ADMIN)
    moved = await stack.wait_for(server.id, settled(RESIZED))
    assert moved.host != server.host and not moved.HasField("fault")
    await stack.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server.id),
                                        metadata=user())
    await stack.wait_for(server.id, settled(ACTIVE))
    # Gone with its last server.
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=user())
    assert await stack.wait_for(server.id, lambda s: s is None) is None
    await stack.api.DeleteImage(C.DeleteImageRequest(ref=image_id), metadata=ADMIN)
    await expect(stack.api.GetImage(C.GetImageRequest(ref=image_id), metadata=ADMIN),
                 grpc.StatusCode.NOT_FOUND, "image")


async def test_a_server_that_never_got_a_host_does_not_keep_the_image(stack):
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="nowhere", image_ref="cirros", flavor_ref="m1.big"), metadata=user())).servers[0]
    failed = await stack.wait_for(server.id, settled(C.VM_STATE_ERROR))
    assert not failed.host
    await stack.api.DeleteImage(C.DeleteImageRequest(ref=await _image_id(stack)), metadata=ADMIN)
