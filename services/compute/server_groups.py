"""ServerGroupService: a project's server groups (server-groups/<project>/<id>).

CRUD only: the scheduler applies the policies and CreateServer adds the
members. Membership lives in the group record alone, so deleting a group
that has members is allowed (as in Nova) and the members simply leave it.

Adding members from the create path, in the caller's own transaction:

    group = await server_groups.get_server_group(store, who.project_id, hints.group)
    # ... check the policy against group.msg (and the member quota) ...
    compares, ops = server_groups.add_members(store, group, [s.id for s in servers])
    resp = await store.txn([*compares, *my_compares], [*ops, *my_ops])
    if not resp.succeeded:
        # The group changed (another create joined it, or it was deleted):
        # read it again (NOT_FOUND if gone), re-check the policy, retry.

`add_members` compares the group's mod_revision as it was read, so two
creates can never both add members on the strength of the same view of
the group (an anti-affinity check stays valid), and a group deleted
meanwhile fails the transaction. `remove_members` is the inverse for the
delete path.

A group of another project is NOT_FOUND (ResourceInfo server_group).

Quota: a group counts in its project's `server_groups` usage, changed in
the transaction that writes or deletes it (RESOURCE_EXHAUSTED with a
QuotaFailure over the limit). The `server_group_members` limit is the create
path's to check (quota.check_server_group_members) before add_members.
"""

from __future__ import annotations

import uuid

from nimbus import errors, log, pagination, quota
from nimbus.compute.v1 import server_groups_pb2 as G, server_groups_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.compute.validation import validate_name
from nimbus.store import keys
from nimbus.servergroups import POLICIES, SG, get_server_group, policy_name
from nimbus.store.store import ExtraCompareFailed, Store, now

_log = log.get("nimbus.compute.server_groups")
# ---- the service --------------------------------------------------------------------

class ServerGroupServicer(server_groups_pb2_grpc.ServerGroupServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def CreateServerGroup(self, request, context):
        who = auth.identity()
        name = validate_name(request.name)
        if request.policy not in POLICIES:
            raise errors.InvalidArgument(
                "policy", "is required: affinity, anti-affinity, soft-affinity or soft-anti-affinity")
        rules = G.ServerGroupRules()
        if request.HasField("rules") and request.rules != rules:
            if request.policy != SG.POLICY_ANTI_AFFINITY:
                raise errors.InvalidArgument("rules", "only the anti-affinity policy takes rules")
            if request.rules.max_server_per_host < 1:
                raise errors.InvalidArgument("rules.max_server_per_host", "must be at least 1")
            rules.CopyFrom(request.rules)
        group = G.ServerGroup(id=str(uuid.uuid4()), name=name, project_id=who.project_id,
                              user_id=who.user_id, policy=request.policy, rules=rules,
                              created_at=now())
        key = keys.server_group(who.project_id, group.id)
        try:
            await quota.apply(self.store, who.project_id, {"server_groups": 1},
                              compares=[self.store.mod_is(key, 0)],
                              ops=[self.store.put(key, group)])
        except ExtraCompareFailed:   # a UUIDv4 collision: never in practice
            raise errors.AlreadyExists(f"server group {group.id} exists") from None
        _log.info("server group created", server_group_id=group.id,
                  policy=policy_name(group.policy))
        return G.CreateServerGroupResponse(server_group=group)

    async def GetServerGroup(self, request, context):
        who = auth.identity()
        if not request.id:
            raise errors.InvalidArgument("id", "is required")
        found = await get_server_group(self.store, who.project_id, request.id)
        return G.GetServerGroupResponse(server_group=found.msg)

    async def ListServerGroups(self, request, context):
        who = auth.identity()
        if request.all_projects and not who.is_admin:
            raise errors.PermissionDenied("all_projects is restricted to admins")
        prefix = keys.SERVER_GROUPS if request.all_projects else f"{keys.SERVER_GROUPS}{who.project_id}/"
        items, _ = await self.store.list(prefix, G.ServerGroup)
        found = [v.msg for _, v in items
                 if request.all_projects or v.msg.project_id == who.project_id]
        page, token = pagination.page_of(request, found, lambda g: [g.name, g.id],
                                         who.project_id, request.all_projects)
        return G.ListServerGroupsResponse(server_groups=page, next_page_token=token)

    async def DeleteServerGroup(self, request, context):
        who = auth.identity()
        if not request.id:
            raise errors.InvalidArgument("id", "is required")
        for _ in range(quota.ATTEMPTS):
            found = await get_server_group(self.store, who.project_id, request.id)
            key = keys.server_group(who.project_id, found.msg.id)
            try:
                # The group goes and its quota is released in one txn, exactly once.
                await quota.apply(self.store, who.project_id, {"server_groups": -1},
                                  compares=[self.store.mod_is(key, found.mod_revision)],
                                  ops=[self.store.delete(key)])
                break
            except ExtraCompareFailed:
                continue   # members joined (or it went) meanwhile: read again
        else:
            raise errors.Unavailable("too many concurrent changes to this server group; retry")
        _log.info("server group deleted", server_group_id=found.msg.id,
                  members=len(found.msg.members))
        return G.DeleteServerGroupResponse()
