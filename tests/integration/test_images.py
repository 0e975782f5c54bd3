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
    # The server's root disk is an overlay on its host's copy, and a move
    # fetches the image again (test_image_delete_moves): kept while it exists.
    err = await expect(stack.api.DeleteImage(C.DeleteImageRequest(ref=mine.id), metadata=ALICE),
                       grpc.StatusCode.FAILED_PRECONDITION)
    assert server.id in err.details()
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=ALICE)
    assert await stack.wait_for(server.id, lambda s: s is None) is None
    await stack.api.DeleteImage(C.DeleteImageRequest(ref=mine.id), metadata=ALICE)
    await expect(stack.api.GetImage(C.GetImageRequest(ref=mine.id), metadata=ALICE),
                 grpc.StatusCode.NOT_FOUND, "image")
    assert not any(mine.id in name for name in os.listdir(stack.cfg.image_dir))


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


CAROL = user("carol", "third")


def _ids(resp) -> set[str]:
    return {i.id for i in resp.images}


async def test_a_shared_image_is_offered_accepted_booted_and_withdrawn(stack, qcow2_image):
    api = stack.api
    shared = await stack.image(qcow2_image, name="team", visibility="shared", metadata=ALICE)
    assert shared.visibility == "shared"
    # Not a member yet: as good as absent.
    await expect(api.GetImage(C.GetImageRequest(ref=shared.id), metadata=BOB),
                 grpc.StatusCode.NOT_FOUND, "image")
    member = (await api.AddImageMember(C.AddImageMemberRequest(
        image_id=shared.id, member_id="other"), metadata=ALICE)).member
    assert (member.member_id, member.status) == ("other", "pending")
    # Pending: usable by id (Glance), but kept out of the member's list.
    assert (await api.GetImage(C.GetImageRequest(ref=shared.id), metadata=BOB)).image.id == shared.id
    assert shared.id not in _ids(await api.ListImages(C.ListImagesRequest(), metadata=BOB))
    await api.UpdateImageMember(C.UpdateImageMemberRequest(
        image_id=shared.id, member_id="other", status="accepted"), metadata=BOB)
    assert shared.id in _ids(await api.ListImages(C.ListImagesRequest(), metadata=BOB))
    assert shared.id not in _ids(await api.ListImages(C.ListImagesRequest(), metadata=CAROL))
    server = (await api.CreateServer(C.CreateServerRequest(
        name="s", image_ref=shared.id, flavor_ref="m1.tiny"), metadata=BOB)).servers[0]
    assert (await stack.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
    # The owner sees every member, a member only itself.
    await api.AddImageMember(C.AddImageMemberRequest(image_id=shared.id, member_id="third"),
                             metadata=ALICE)
    owner_view = (await api.ListImageMembers(C.ListImageMembersRequest(image_id=shared.id),
                                             metadata=ALICE)).members
    assert [(m.member_id, m.status) for m in owner_view] == [("other", "accepted"),
                                                            ("third", "pending")]
    bob_view = (await api.ListImageMembers(C.ListImageMembersRequest(image_id=shared.id),
                                           metadata=BOB)).members
    assert [m.member_id for m in bob_view] == ["other"]
    # Withdrawn: gone for the member again; deleting the image drops its members.
    await api.RemoveImageMember(C.RemoveImageMemberRequest(image_id=shared.id,
                                                           member_id="other"), metadata=ALICE)
    await expect(api.GetImage(C.GetImageRequest(ref=shared.id), metadata=BOB),
                 grpc.StatusCode.NOT_FOUND, "image")
    await api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=BOB)
    await stack.wait_for(server.id, lambda s: s is None)
    await api.DeleteImage(C.DeleteImageRequest(ref=shared.id), metadata=ALICE)
    assert await stack.store.get_raw(f"image-members/{shared.id}/third") is None


async def test_update_image_renames_and_changes_visibility(stack, qcow2_image):
    api = stack.api
    mine = await stack.image(qcow2_image, name="old", visibility="", metadata=ALICE)
    renamed = (await api.UpdateImage(C.UpdateImageRequest(ref=mine.id, name="new",
                                                          visibility="shared"),
                                     metadata=ALICE)).image
    assert (renamed.name, renamed.visibility) == ("new", "shared")
    assert (await api.GetImage(C.GetImageRequest(ref="new"), metadata=ALICE)).image.id == mine.id
    # Back to private: members stay recorded but no longer see it (Glance).
    await api.AddImageMember(C.AddImageMemberRequest(image_id=mine.id, member_id="other"),
                             metadata=ALICE)
    await api.UpdateImage(C.UpdateImageRequest(ref=mine.id, visibility="private"),
                          metadata=ALICE)
    await expect(api.GetImage(C.GetImageRequest(ref=mine.id), metadata=BOB),
                 grpc.StatusCode.NOT_FOUND, "image")


@pytest.mark.parametrize("method, fields, caller, code, field", [
    # Only shared images have members; not yourself; no empty ids.
    ("AddImageMember", {"image_id": "{private}", "member_id": "other"}, ALICE,
     grpc.StatusCode.FAILED_PRECONDITION, ""),
    ("AddImageMember", {"image_id": "{shared}", "member_id": "demo"}, ALICE,
     grpc.StatusCode.INVALID_ARGUMENT, "member_id"),
    ("AddImageMember", {"image_id": "{shared}", "member_id": ""}, ALICE,
     grpc.StatusCode.INVALID_ARGUMENT, "member_id"),
    ("AddImageMember", {"image_id": "", "member_id": "other"}, ALICE,
     grpc.StatusCode.INVALID_ARGUMENT, "image_id"),
    ("AddImageMember", {"image_id": "{shared}", "member_id": "third"}, ALICE,
     grpc.StatusCode.ALREADY_EXISTS, ""),
    # A member cannot manage the member list; a stranger sees no image.
    ("AddImageMember", {"image_id": "{shared}", "member_id": "x"}, CAROL,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("RemoveImageMember", {"image_id": "{shared}", "member_id": "third"}, CAROL,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("AddImageMember", {"image_id": "{shared}", "member_id": "x"}, BOB,
     grpc.StatusCode.NOT_FOUND, "image"),
    ("ListImageMembers", {"image_id": "{shared}"}, CAROL, grpc.StatusCode.OK, ""),
    ("ListImageMembers", {"image_id": "{private}"}, BOB, grpc.StatusCode.NOT_FOUND, "image"),
    ("RemoveImageMember", {"image_id": "{shared}", "member_id": "nobody"}, ALICE,
     grpc.StatusCode.NOT_FOUND, "image member"),
    # The member answers for itself, with a known status.
    ("UpdateImageMember", {"image_id": "{shared}", "member_id": "third", "status": "accepted"},
     ALICE, grpc.StatusCode.PERMISSION_DENIED, ""),
    ("UpdateImageMember", {"image_id": "{shared}", "member_id": "third", "status": "maybe"},
     CAROL, grpc.StatusCode.INVALID_ARGUMENT, "status"),
    # Visibility: a known value, public by admins only, the owner's to change.
    ("UpdateImage", {"ref": "{shared}", "visibility": "community"}, ALICE,
     grpc.StatusCode.INVALID_ARGUMENT, "visibility"),
    ("UpdateImage", {"ref": "{shared}", "visibility": "public"}, ALICE,
     grpc.StatusCode.PERMISSION_DENIED, ""),
    ("UpdateImage", {"ref": "{shared}", "name": "stolen"}, CAROL,
     grpc.StatusCode.PERMISSION_DENIED, ""),
])
async def test_image_member_refusals(stack, qcow2_image, method, fields, caller, code, field):
    shared = await stack.image(qcow2_image, name="sh", visibility="shared", metadata=ALICE)
    private = await stack.image(qcow2_image, name="pr", visibility="", metadata=ALICE)
    await stack.api.AddImageMember(C.AddImageMemberRequest(image_id=shared.id,
                                                           member_id="third"), metadata=ALICE)
    request_type = getattr(C, method + "Request")
    request = request_type(**{k: v.format(shared=shared.id, private=private.id)
                              for k, v in fields.items()})
    call = getattr(stack.api, method)(request, metadata=caller)
    if code == grpc.StatusCode.OK:
        # CAROL is a pending member: she sees only her own membership.
        assert [m.member_id for m in (await call).members] == ["third"]
        return
    err = await expect(call, code, field) if field else None
    if err is None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == code, raised.value.details()
    # Nothing changed: the member list is as it was.
    members = (await stack.api.ListImageMembers(C.ListImageMembersRequest(image_id=shared.id),
                                                metadata=ALICE)).members
    assert [(m.member_id, m.status) for m in members] == [("third", "pending")]
    assert (await stack.api.GetImage(C.GetImageRequest(ref=shared.id),
                                     metadata=ALICE)).image.name == "sh"
