"""HypervisorService (admin): compute hosts with their capacity and usage,
and the scheduling switch (Nova's os-hypervisors and os-services)."""

from __future__ import annotations

from nimbus import errors, pagination
from nimbus.compute.v1 import hypervisors_pb2 as H
from nimbus.compute.v1 import hypervisors_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.compute.aggregates import list_aggregates, zone_hosts
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store, now

MAX_REASON = 255


class HypervisorServicer(hypervisors_pb2_grpc.HypervisorServiceServicer):
    def __init__(self, store: Store, instances: Informer):
        self.store = store
        self.instances = instances

    async def _hypervisors(self) -> dict[str, H.Hypervisor]:
        """Every known host: a node record (up) or allocations (down)."""
        nodes, _ = await self.store.list(keys.NODES, records_pb2.NodeRecord)
        providers, _ = await self.store.list(keys.PROVIDERS, records_pb2.ProviderUsage)
        statuses, _ = await self.store.list(keys.COMPUTE_SERVICES, records_pb2.ComputeServiceStatus)
        aggregates, _ = await list_aggregates(self.store)
        live = {v.msg.host: v.msg for _, v in nodes}
        known = set(live) | {v.msg.host for _, v in providers if v.msg.host}
        zone_of = {host: zone for zone, hosts in
                   zone_hosts((v.msg for v in aggregates), known).items() for host in hosts}
        used = {v.msg.host: v.msg.used for _, v in providers}
        status = {v.msg.host: v.msg for _, v in statuses}
        running: dict[str, int] = {}
        for v in list(self.instances.items.values()):
            if v.msg.server.host:
                running[v.msg.server.host] = running.get(v.msg.server.host, 0) + 1
        out = {}
        for host in sorted(known):
            node = live.get(host, records_pb2.NodeRecord())
            switch = status.get(host, records_pb2.ComputeServiceStatus())
            u = used.get(host, records_pb2.Resources())
            out[host] = H.Hypervisor(
                host=host, state="up" if host in live else "down",
                status="disabled" if switch.disabled or node.disabled else "enabled",
                disabled_reason=switch.disabled_reason, availability_zone=zone_of.get(host, ""),
                hypervisor_type=node.hypervisor_type, vcpus=node.total.vcpus,
                memory_mb=node.total.memory_mb, disk_gb=node.total.disk_gb,
                vcpus_used=u.vcpus, memory_mb_used=u.memory_mb, disk_gb_used=u.disk_gb,
                cpu_allocation_ratio=node.cpu_allocation_ratio,
                ram_allocation_ratio=node.ram_allocation_ratio,
                disk_allocation_ratio=node.disk_allocation_ratio,
                running_servers=running.get(host, 0), started_at=node.started_at)
        return out

    async def _one(self, host: str) -> H.Hypervisor:
        if not host:
            raise errors.InvalidArgument("host", "is required")
        found = (await self._hypervisors()).get(host)
        if found is None:
            raise errors.NotFound("host", host)
        return found

    async def ListHypervisors(self, request, context):
        auth.require_admin()
        page, token = pagination.page_of(request, list((await self._hypervisors()).values()),
                                         lambda h: [h.host])
        return H.ListHypervisorsResponse(hypervisors=page, next_page_token=token)

    async def GetHypervisor(self, request, context):
        auth.require_admin()
        return H.GetHypervisorResponse(hypervisor=await self._one(request.host))

    async def _switch(self, host: str, disabled: bool, reason: str) -> H.Hypervisor:
        auth.require_admin()
        if len(reason) > MAX_REASON:
            raise errors.InvalidArgument("reason", f"at most {MAX_REASON} characters")
        await self._one(host)
        record = records_pb2.ComputeServiceStatus(host=host, disabled=disabled,
                                                  disabled_reason=reason if disabled else "",
                                                  updated_at=now())
        await self.store.txn([], [self.store.put(keys.compute_service(host), record)])
        return await self._one(host)

    async def DisableComputeService(self, request, context):
        return H.DisableComputeServiceResponse(
            hypervisor=await self._switch(request.host, True, request.reason))

    async def EnableComputeService(self, request, context):
        return H.EnableComputeServiceResponse(hypervisor=await self._switch(request.host, False, ""))
