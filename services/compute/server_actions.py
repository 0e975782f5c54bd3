"""The server actions of ComputeService (Nova's compute/api.py stop, start,
reboot, get_console_output): each checks the transition table
(nimbus.states), and sets its task state, the server's current action and
a new instance action in one compare-and-swap; the host does the rest."""

from __future__ import annotations

import uuid

import grpc

from nimbus import errors, states
from nimbus.clock import now
from nimbus.compute.v1 import compute_pb2
from nimbus.conductor.v1 import conductor_pb2
from nimbus.rpc import auth, interceptor
from nimbus.state.v1 import records_pb2
from nimbus.store import keys

C = compute_pb2
MAX_CONSOLE_LINES = 10000


class ServerActions:
    """Mixed into ComputeServicer (which provides store, _server, conductor)."""

    async def start_action(self, server_id: str, action: str, who: auth.Identity,
                           needs_host: bool = True) -> C.Server:
        found = await self._server(server_id, who)
        rule = states.ACTIONS[action]
        request_id = interceptor.request_id() or f"req-{uuid.uuid4()}"
        akey = keys.action(server_id, request_id)

        def mutate(rec: records_pb2.InstanceRecord):
            states.check(action, rec.server)
            if needs_host and not rec.server.host:
                # Nova's check_instance_host: nobody could act on it.
                raise errors.FailedPrecondition(f"server {server_id} has no host: it never ran")
            stamp = now()
            rec.server.task_state = rule.sets
            rec.server.updated_at.CopyFrom(stamp)
            rec.task_changed_at.CopyFrom(stamp)
            rec.request_id = request_id
            record = records_pb2.InstanceAction(
                request_id=request_id, instance_id=server_id,
                action=states.ACTION_NAMES.get(action, action), project_id=who.project_id,
                user_id=who.user_id, start_time=stamp)
            return [self.store.mod_is(akey, 0)], [self.store.put(akey, record)]

        # The table checks vm_state and task_state inside the CAS loop.
        updated = await self.store.update_instance(server_id, mutate, current=found)
        return updated.msg.server

    async def StopServer(self, request, context):
        who = auth.identity()
        return C.StopServerResponse(server=self.view(await self.start_action(request.id, "stop", who),
                                                     who))

    async def StartServer(self, request, context):
        who = auth.identity()
        return C.StartServerResponse(server=self.view(await self.start_action(request.id, "start", who),
                                                      who))

    async def RebootServer(self, request, context):
        who = auth.identity()
        action = {C.REBOOT_TYPE_SOFT: "reboot_soft", C.REBOOT_TYPE_HARD: "reboot_hard"}.get(request.type)
        if action is None:
            raise errors.InvalidArgument("type", "must be REBOOT_TYPE_SOFT or REBOOT_TYPE_HARD")
        return C.RebootServerResponse(server=self.view(await self.start_action(request.id, action, who),
                                                       who))

    async def GetConsoleOutput(self, request, context):
        who = auth.identity()
        if request.length < 0 or request.length > MAX_CONSOLE_LINES:
            raise errors.InvalidArgument("length", f"must be between 0 and {MAX_CONSOLE_LINES}")
        found = await self._server(request.id, who)
        server = found.msg.server
        if not server.host or server.vm_state == C.VM_STATE_BUILDING:
            raise errors.InvalidState("get_console_output", server.id,
                                      states.vm_state_name(server.vm_state),
                                      states.task_state_name(server.task_state))
        try:
            resp = await self.conductor.GetConsoleOutput(
                conductor_pb2.GetConsoleOutputRequest(instance_id=server.id, length=request.length),
                metadata=self.service_metadata, timeout=15)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise errors.FailedPrecondition(exc.details()) from None
            raise   # UNAVAILABLE and the like: the interceptor says "retry"
        return C.GetConsoleOutputResponse(output=resp.output)
