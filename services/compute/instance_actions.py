"""InstanceActionService: a server's actions (actions/<server>/<request id>)
and their events, Nova's os-instance-actions. Scoped like servers: a server
of another project is NOT_FOUND (admins and services see all). Event hosts,
tracebacks and details are for admins only; everybody gets host_id (Nova's
hashed hostId)."""

from __future__ import annotations

import hashlib

from nimbus.ids import is_uuid
from nimbus import errors, pagination
from nimbus.compute.v1 import instance_actions_pb2, instance_actions_pb2_grpc
from nimbus.rpc import auth
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store

A = instance_actions_pb2


def host_id(project_id: str, host: str) -> str:
    """Nova's hostId: stable per (project, host), without naming the host."""
    return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""


def _nanos(ts) -> int:
    return ts.seconds * 1_000_000_000 + ts.nanos


def public_action(rec: records_pb2.InstanceAction, who: auth.Identity,
                  with_events: bool) -> A.InstanceAction:
    action = A.InstanceAction(request_id=rec.request_id, server_id=rec.instance_id,
                              action=rec.action, project_id=rec.project_id, user_id=rec.user_id,
                              start_time=rec.start_time, message=rec.message)
    latest = rec.start_time
    for ev in rec.events:
        for ts in (ev.start_time, ev.finish_time):
            if _nanos(ts) > _nanos(latest):
                latest = ts
        if not with_events:
            continue
        out = action.events.add(event=ev.event, start_time=ev.start_time,
                                finish_time=ev.finish_time, result=ev.result,
                                host_id=host_id(rec.project_id, ev.host))
        if who.is_admin:
            out.host = ev.host
            out.details = ev.details
    action.updated_at.CopyFrom(latest)
    return action


class InstanceActionServicer(instance_actions_pb2_grpc.InstanceActionServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def _check_server(self, server_id: str, who: auth.Identity) -> None:
        if not server_id:
            raise errors.InvalidArgument("server_id", "is required")
        if not is_uuid(server_id):
            raise errors.NotFound("server", server_id)
        found = await self.store.get(keys.instance(server_id), records_pb2.InstanceRecord)
        if found is None or not (found.msg.server.project_id == who.project_id or who.is_admin):
            raise errors.NotFound("server", server_id)

    async def ListInstanceActions(self, request, context):
        who = auth.identity()
        await self._check_server(request.server_id, who)
        items, _ = await self.store.list(keys.action(request.server_id, ""),
                                         records_pb2.InstanceAction)
        page, token = pagination.page_of(
            request, [v.msg for _, v in items], lambda r: [_nanos(r.start_time), r.request_id],
            who.project_id, request.server_id, descending=True)
        return A.ListInstanceActionsResponse(
            actions=[public_action(r, who, with_events=False) for r in page],
            next_page_token=token)

    async def GetInstanceAction(self, request, context):
        who = auth.identity()
        await self._check_server(request.server_id, who)
        if not request.request_id:
            raise errors.InvalidArgument("request_id", "is required")
        found = await self.store.get(keys.action(request.server_id, request.request_id),
                                     records_pb2.InstanceAction)
        if found is None:
            raise errors.NotFound("instance_action", request.request_id)
        return A.GetInstanceActionResponse(action=public_action(found.msg, who, with_events=True))
