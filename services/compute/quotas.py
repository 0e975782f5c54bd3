"""QuotaService: per-project limits (admin get/set) and usage, over the
quota engine in nimbus.quota. A user reads their own project's quotas and
usage; an admin reads and changes any project's."""

from __future__ import annotations

import re

from nimbus import errors, quota
from nimbus.compute.v1 import quotas_pb2, quotas_pb2_grpc
from nimbus.rpc import auth
from nimbus.store.store import Store

Q = quotas_pb2
_PROJECT = re.compile(r"[A-Za-z0-9._-]{1,255}")


def _project(project_id: str) -> str:
    if not project_id:
        raise errors.InvalidArgument("project_id", "is required")
    if not _PROJECT.fullmatch(project_id):
        raise errors.InvalidArgument("project_id", "1 to 255 letters, digits, '.', '_' or '-'")
    return project_id


def readable_project(project_id: str, who: auth.Identity) -> str:
    """The caller's project when empty; another project needs an admin."""
    if not project_id or project_id == who.project_id:
        return who.project_id
    if not who.is_admin:
        raise errors.PermissionDenied("only admins may read another project's quotas")
    return _project(project_id)


def quota_set(values: dict[str, int]) -> Q.QuotaSet:
    return Q.QuotaSet(**values)


class QuotaServicer(quotas_pb2_grpc.QuotaServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def GetQuotas(self, request, context):
        project = readable_project(request.project_id, auth.identity())
        snap = await quota.snapshot(self.store, project)
        return Q.GetQuotasResponse(project_id=project, quota_set=quota_set(snap.limits),
                                   overrides=quota_set(snap.overrides))

    async def UpdateQuotas(self, request, context):
        auth.require_admin()
        project = _project(request.project_id)
        values = quota.overrides_of(request.quota_set)
        if not values:
            raise errors.InvalidArgument("quota_set", "set at least one limit")
        snap = await quota.set_limits(self.store, project, values, force=request.force)
        return Q.UpdateQuotasResponse(project_id=project, quota_set=quota_set(snap.limits),
                                      overrides=quota_set(snap.overrides))

    async def GetQuotaUsage(self, request, context):
        project = readable_project(request.project_id, auth.identity())
        snap = await quota.snapshot(self.store, project)
        usage = Q.QuotaUsageSet()
        for resource in quota.RESOURCES:
            getattr(usage, resource).CopyFrom(Q.QuotaDetail(
                limit=snap.limits[resource], in_use=snap.usage.get(resource, 0)))
        return Q.GetQuotaUsageResponse(project_id=project, usage=usage)

    async def DeleteQuotas(self, request, context):
        auth.require_admin()
        project = _project(request.project_id)
        await quota.delete_limits(self.store, project)
        return Q.DeleteQuotasResponse(project_id=project, quota_set=quota_set(quota.DEFAULTS))
