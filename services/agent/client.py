"""The agent's side of its calls to the control plane: the conductor (every
state change, with the expected task states) and the compute API (images).

Transport errors (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED: a peer that is
restarting, failing over or overloaded) are retried with exponential
backoff and jitter for as long as it takes: the conductor is the only way
this agent can make progress, and a restart of a peer is not the server's
fault, so it never costs a build attempt. A refusal (FAILED_PRECONDITION,
NOT_FOUND: another actor changed the server) raises Lost."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import field_mask_pb2

from nimbus import backoff, log, metrics
from nimbus.compute.v1 import compute_pb2, compute_pb2_grpc
from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
from nimbus.clock import now

C = compute_pb2
_log = log.get("nimbus.agent")


class Lost(Exception):
    """Another actor changed the server (deleted it, most often): stop."""


class ConductorClient:
    def __init__(self, host: str, conductor: conductor_pb2_grpc.ConductorServiceStub,
                 api: compute_pb2_grpc.ComputeServiceStub, metadata):
        self.host = host
        self.conductor = conductor
        self.api = api
        self.metadata = metadata
        self.transport_retries = 0   # calls tried again after a transport error
        self._images: dict[str, C.Image] = {}

    async def call(self, method, request, before_retry=None, timeout: float = 10):
        attempt = 0
        while True:
            try:
                return await method(request, metadata=self.metadata, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                    raise Lost(exc.details()) from None
                if exc.code() not in backoff.TRANSPORT_CODES:
                    raise
                self.transport_retries += 1
                metrics.RETRIES.labels("agent", exc.code().name).inc()
                if attempt % 10 == 0:
                    _log.warning("conductor call failed, retrying", host=self.host,
                                 code=exc.code().name, attempt=attempt)
            if before_retry is not None:
                before_retry()
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1

    async def update(self, server_id: str, expected: list[int], **fields):
        """Report a state change: (the server, its etcd revision). A retry also
        accepts the target task state, since the first try may have landed
        unanswered."""
        request = conductor_pb2.UpdateInstanceRequest(
            host=self.host, server=C.Server(id=server_id, **fields),
            update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
            expected_task_states=expected)

        def accept_target() -> None:
            if "task_state" in fields and fields["task_state"] not in request.expected_task_states:
                request.expected_task_states.append(fields["task_state"])
        return await self.call(self.conductor.UpdateInstance, request, accept_target)

    async def allocate_networks(self, instance_id: str):
        return await self.call(self.conductor.AllocateNetworks, conductor_pb2.AllocateNetworksRequest(
            host=self.host, instance_id=instance_id), timeout=30)

    async def check_server_group(self, instance_id: str) -> str:
        """The late policy check (Nova's _validate_instance_group_policy):
        the violation, or '' when building here is fine."""
        try:
            await self.call(self.conductor.CheckServerGroup, conductor_pb2.CheckServerGroupRequest(
                host=self.host, instance_id=instance_id), timeout=30)
        except Lost as exc:
            return str(exc)
        return ""

    async def give_back(self, instance_id: str, message: str, expected: list[int]) -> None:
        """Hand a failed build back for rescheduling. Refused means already
        done or not ours any more: both fine."""
        fault = C.Fault(code=500, message=message, created_at=now())
        await self.quietly(self.conductor.RescheduleInstance, conductor_pb2.RescheduleInstanceRequest(
            host=self.host, instance_id=instance_id, fault=fault, expected_task_states=expected))

    async def finish_delete(self, instance_id: str) -> None:
        await self.quietly(self.conductor.FinishDeleteInstance,
                           conductor_pb2.FinishDeleteInstanceRequest(host=self.host,
                                                                     instance_id=instance_id))

    async def quietly(self, method, request) -> None:
        try:
            await self.call(method, request)
        except Lost:
            pass

    # ---- images (the compute API is the image service) ------------------------

    async def image(self, image_id: str) -> C.Image:
        if image_id not in self._images:   # images are immutable once active
            resp = await self.api.GetImage(C.GetImageRequest(ref=image_id),
                                           metadata=self.metadata, timeout=30)
            self._images[image_id] = resp.image
        return self._images[image_id]

    def download(self, image_id: str):
        async def chunks():
            async for part in self.api.DownloadImage(C.DownloadImageRequest(id=image_id),
                                                     metadata=self.metadata):
                yield part.chunk
        return chunks
