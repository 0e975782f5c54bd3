"""Flavor access (Nova's os-flavor-access): a flavor that is not public is
seen and booted only by the projects given access, and by admins.
Records: flavor-access/<flavor id>/<project id> (empty values)."""

from __future__ import annotations

from nimbus import errors, pagination
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.rpc import auth
from nimbus.store import keys
from nimbus.store.store import Store


def is_public(flavor: C.Flavor) -> bool:
    return not flavor.HasField("is_public") or flavor.is_public


async def projects(store: Store, flavor_id: str) -> list[str]:
    items, _ = await store.list(keys.flavor_access(flavor_id), C.Flavor)
    return sorted(key.rsplit("/", 1)[1] for key, _ in items)


async def may_use(store: Store, flavor: C.Flavor, who: auth.Identity) -> bool:
    """One read, and only for a private flavor seen by a non-admin."""
    if is_public(flavor) or who.is_admin:
        return True
    return await store.get_raw(keys.flavor_access(flavor.id, who.project_id)) is not None


class FlavorAccess:
    """The three admin RPCs, mixed into ComputeServicer (they need its catalog)."""

    async def _private_flavor(self, ref: str, project_id: str | None) -> C.Flavor:
        auth.require_admin()
        if project_id is not None and not project_id:
            raise errors.InvalidArgument("project_id", "is required")
        flavor = await self.catalog.flavor(ref, "flavor_ref")
        if is_public(flavor):
            raise errors.FailedPrecondition(
                f"flavor {flavor.id} is public: access lists are for private flavors")
        return flavor

    async def AddFlavorAccess(self, request, context):
        flavor = await self._private_flavor(request.flavor_ref, request.project_id)
        await self.store.txn([], [self.store.put(keys.flavor_access(flavor.id, request.project_id),
                                                 C.Flavor())])
        return C.AddFlavorAccessResponse(project_ids=await projects(self.store, flavor.id))

    async def RemoveFlavorAccess(self, request, context):
        flavor = await self._private_flavor(request.flavor_ref, request.project_id)
        key = keys.flavor_access(flavor.id, request.project_id)
        if await self.store.get_raw(key) is None:
            raise errors.NotFound("flavor_access", f"{flavor.id}/{request.project_id}")
        await self.store.txn([], [self.store.delete(key)])
        return C.RemoveFlavorAccessResponse(project_ids=await projects(self.store, flavor.id))

    async def ListFlavorAccess(self, request, context):
        flavor = await self._private_flavor(request.flavor_ref, None)
        page, token = pagination.page_of(request, await projects(self.store, flavor.id),
                                         lambda p: [p], flavor.id)
        return C.ListFlavorAccessResponse(project_ids=page, next_page_token=token)
