"""SchedulerService: SelectDestinations over the HostManager's view of
nodes and their usage."""

from __future__ import annotations

import random

from nimbus import log
from nimbus.rpc import auth
from nimbus.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from nimbus.services.scheduler.host_manager import HostManager

_log = log.get("nimbus.scheduler")


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, hosts: HostManager, seed: int | None = None):
        self.hosts = hosts
        self.rng = random.Random(seed)

    async def SelectDestinations(self, request, context):
        auth.require_service()
        response = scheduler_pb2.SelectDestinationsResponse()
        self.hosts.expire()
        count = 1 + max(0, request.num_alternates)
        # Members of one group placed earlier in this request count like
        # placed members (multi-create affinity and anti-affinity).
        placed_in_request: dict[str, list[str]] = {}
        for spec in request.specs:
            if spec.group_id and placed_in_request.get(spec.group_id):
                spec.group_hosts.extend(placed_in_request[spec.group_id])
            chosen, reason = self.hosts.select(spec, count, self.rng)
            if chosen:
                # Counted at once: the next spec of this request and the
                # next request see it.
                self.hosts.assume(spec.instance_id, chosen[0].host, spec.resources)
                if spec.group_id:
                    placed_in_request.setdefault(spec.group_id, []).append(chosen[0].host)
            response.selections.add(instance_id=spec.instance_id,
                                    hosts=[hs.host for hs in chosen],
                                    reason=f"filter {reason} returned 0 hosts" if reason else "")
        return response
