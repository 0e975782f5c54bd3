"""Image sharing (Glance's image members): a `shared` image is seen by its
project and by the member projects its project adds. A member may boot it
by id whatever its member status; it appears in the member's ListImages
once the member has accepted (Glance's rule: the status is the member's
answer to an offer, and keeps unwanted images out of its lists).
Records: image-members/<image id>/<project id> (ImageMember)."""

from __future__ import annotations

from nimbus import errors
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.rpc import auth
from nimbus.services.compute.validation import validate_name
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store

VISIBILITIES = ("private", "shared", "public")
STATUSES = ("pending", "accepted", "rejected")
MAX_MEMBERS = 128   # Glance's image_member_quota


async def member(store: Store, image_id: str, project_id: str):
    return await store.get(keys.image_member(image_id, project_id), C.ImageMember)


async def may_see(store: Store, image: C.Image, who: auth.Identity) -> bool:
    """Whether `who` may use the image (one read, only for another
    project's shared image)."""
    if image.visibility == "public" or image.owner == who.project_id or who.is_admin \
            or who.is_service:
        return True
    return image.visibility == "shared" and await member(store, image.id, who.project_id) \
        is not None


async def accepted_by(store: Store, project_id: str) -> set[str]:
    """The ids of the shared images `project_id` has accepted (ListImages)."""
    items, _ = await store.list(keys.IMAGE_MEMBERS, C.ImageMember)
    return {v.msg.image_id for _, v in items
            if v.msg.member_id == project_id and v.msg.status == "accepted"}


def check_visibility(visibility: str, who: auth.Identity, field: str) -> None:
    if visibility not in VISIBILITIES:
        raise errors.InvalidArgument(field, f"must be one of {', '.join(VISIBILITIES)}")
    if visibility == "public" and not who.is_admin:
        raise errors.PermissionDenied("only admins make images public (Glance's policy)")


def _required(value: str, field: str) -> str:
    if not value:
        raise errors.InvalidArgument(field, "is required")
    if len(value) > 255:
        raise errors.InvalidArgument(field, "at most 255 characters")
    return value


class ImageMembers:
    """UpdateImage and the member RPCs, mixed into ComputeServicer (they
    need its catalog)."""

    async def _image(self, image_id: str, who: auth.Identity) -> records_pb2.ImageRecord:
        return await self.catalog.image(_required(image_id, "image_id"), "image_id", who)

    async def _owned(self, image_id: str, who: auth.Identity) -> records_pb2.ImageRecord:
        record = await self._image(image_id, who)
        if record.image.owner != who.project_id and not who.is_admin:
            raise errors.PermissionDenied(
                f"only image {record.image.id}'s project manages its members")
        return record

    async def UpdateImage(self, request, context):
        who = auth.identity()
        record = await self.catalog.image(request.ref, "ref", who)
        if record.image.owner != who.project_id and not who.is_admin:
            raise errors.PermissionDenied(f"image {record.image.id} belongs to another project")
        name = validate_name(request.name, "name") if request.HasField("name") else None
        if request.HasField("visibility"):
            check_visibility(request.visibility, who, "visibility")

        def mutate(rec: records_pb2.ImageRecord):
            if name is not None:
                rec.image.name = name
            if request.HasField("visibility"):
                rec.image.visibility = request.visibility
        updated = await self.store.update(keys.image(record.image.id), records_pb2.ImageRecord,
                                          mutate,
                                          not_found=errors.NotFound("image", request.ref))
        return C.UpdateImageResponse(image=updated.msg.image)

    async def AddImageMember(self, request, context):
        who = auth.identity()
        image_id = (await self._owned(request.image_id, who)).image.id
        member_id = _required(request.member_id, "member_id")
        fresh = await self.store.get(keys.image(image_id), records_pb2.ImageRecord)
        if fresh is None:
            raise errors.NotFound("image", request.image_id)
        image = fresh.msg.image
        if image.visibility != "shared":
            raise errors.FailedPrecondition(
                f"image {image.id} is {image.visibility}: only shared images have members")
        if member_id == image.owner:
            raise errors.InvalidArgument("member_id", "is the image's own project")
        prefix = keys.image_member(image.id)
        members, revision = await self.store.list(prefix, C.ImageMember)
        if len(members) >= MAX_MEMBERS:
            raise errors.ResourceExhausted(f"image {image.id} has {MAX_MEMBERS} members, the most")
        stamp = now()
        record = C.ImageMember(image_id=image.id, member_id=member_id, status="pending",
                               created_at=stamp, updated_at=stamp)
        key = keys.image_member(image.id, member_id)
        # One transaction against what was checked: the image unchanged (still
        # shared, not deleted) and no member added since the count.
        resp = await self.store.txn(
            [self.store.mod_is(key, 0), self.store.prefix_unchanged(prefix, revision),
             self.store.mod_is(keys.image(image.id), fresh.mod_revision)],
            [self.store.put(key, record)])
        if not resp.succeeded:
            if await member(self.store, image.id, member_id) is not None:
                raise errors.AlreadyExists(f"project {member_id} is a member of image {image.id}")
            raise errors.Unavailable("the image or its members changed meanwhile; retry")
        return C.AddImageMemberResponse(member=record)

    async def RemoveImageMember(self, request, context):
        who = auth.identity()
        image = (await self._owned(request.image_id, who)).image
        member_id = _required(request.member_id, "member_id")
        key = keys.image_member(image.id, member_id)
        found = await member(self.store, image.id, member_id)
        if found is None:
            raise errors.NotFound("image member", f"{image.id}/{member_id}")
        await self.store.txn([self.store.mod_is(key, found.mod_revision)],
                             [self.store.delete(key)])
        return C.RemoveImageMemberResponse()

    async def ListImageMembers(self, request, context):
        who = auth.identity()
        image = (await self._image(request.image_id, who)).image
        items, _ = await self.store.list(keys.image_member(image.id), C.ImageMember)
        members = sorted((v.msg for _, v in items), key=lambda m: m.member_id)
        if image.owner != who.project_id and not who.is_admin:
            members = [m for m in members if m.member_id == who.project_id]
        return C.ListImageMembersResponse(members=members)

    async def UpdateImageMember(self, request, context):
        who = auth.identity()
        image = (await self._image(request.image_id, who)).image
        member_id = _required(request.member_id, "member_id")
        if request.status not in STATUSES:
            raise errors.InvalidArgument("status", f"must be one of {', '.join(STATUSES)}")
        if member_id != who.project_id:
            raise errors.PermissionDenied("only the member project answers for itself")

        def mutate(rec: C.ImageMember):
            rec.status = request.status
            rec.updated_at.CopyFrom(now())
        updated = await self.store.update(
            keys.image_member(image.id, member_id), C.ImageMember, mutate,
            not_found=errors.NotFound("image member", f"{image.id}/{member_id}"))
        return C.UpdateImageMemberResponse(member=updated.msg)
