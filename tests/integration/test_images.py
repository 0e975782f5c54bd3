"""Images as Glance's users expect: members upload (private by default),
admins make images public, and DeleteImage removes record and bytes."""

import os

import grpc
import pytest

from stack import ADMIN, C, Stack, expect, user

ALICE, BOB = user("alice", "demo"), user("bob", "other")


@pytest.fixture
async def stack(etcd, tmp_path):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1) as s:
        await s.flavor("m1.tiny")
        yield s


async def test_member_uploads_a_private_image_and_deletes_it(stack, qcow2_image):
    mine = await stack.image(qcow2_image, name="mine", visibility="", metadata=ALICE)
    assert (mine.visibility, mine.owner) == ("private", "demo")
    await expect(stack.api.GetImage(C.GetImageRequest(ref=mine.id), metadata=BOB),
                 grpc.StatusCode.NOT_FOUND, "image")
    assert mine.id not in [i.id for i in (await stack.api.ListImages(
        C.ListImagesRequest(), metadata=BOB)).images]
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="s", image_ref="mine", flavor_ref="m1.tiny"), metadata=ALICE)).servers[0]
    assert (await stack.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
    stored = os.listdir(stack.cfg.image_dir)
    assert any(mine.id in name for name in stored)
    # A running server on local disks keeps its own copy: deleting is fine.
    await stack.api.DeleteImage(C.DeleteImageRequest(ref=mine.id), metadata=ALICE)
    await expect(stack.api.GetImage(C.GetImageRequest(ref=mine.id), metadata=ALICE),
                 grpc.StatusCode.NOT_FOUND, "image")
    assert not any(mine.id in name for name in os.listdir(stack.cfg.image_dir))
    got = (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=ALICE)).server
    assert got.vm_state == C.VM_STATE_ACTIVE


async def test_image_refusals(stack, qcow2_image):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.image(qcow2_image, name="pub", visibility="public", metadata=ALICE)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    public = await stack.image(qcow2_image, name="pub", visibility="public")
    private = await stack.image(qcow2_image, name="priv", visibility="", metadata=ALICE)
    await expect(stack.api.DeleteImage(C.DeleteImageRequest(ref=public.id), metadata=BOB),
                 grpc.StatusCode.PERMISSION_DENIED)
    await expect(stack.api.DeleteImage(C.DeleteImageRequest(ref=private.id), metadata=BOB),
                 grpc.StatusCode.NOT_FOUND, "image")
    await expect(stack.api.DeleteImage(C.DeleteImageRequest(), metadata=ALICE),
                 grpc.StatusCode.INVALID_ARGUMENT, "ref")
    await stack.api.DeleteImage(C.DeleteImageRequest(ref=private.id), metadata=ADMIN)
