"""nimbus-conductor: `python -m nimbus.services.conductor`.

Every conductor serves agents (streams, updates, node reports); one of them,
elected over an etcd lease, also runs the scheduling loop and the sweeper."""

from __future__ import annotations

import asyncio

from nimbus import config, metrics, process, reservations
from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
from nimbus.rpc import auth, tls
from nimbus.rpc.server import Server, channel
from nimbus.scheduler.v1 import scheduler_pb2_grpc
from nimbus.services.conductor.handlers import Conductor, ConductorServicer
from nimbus.services.conductor.moves import MigrationController
from nimbus.services.conductor.scheduling import BuildScheduler
from nimbus.store.election import LeaderElection
from nimbus.store.store import Store


class ConductorProcess(process.ServiceProcess):
    def __init__(self, cfg: config.Config, sweep_interval: float = 2.0):
        super().__init__(cfg)
        self.sweep_interval = sweep_interval

    async def start(self) -> "ConductorProcess":
        cfg = self.cfg
        self.store = await Store.for_config(cfg)
        self.closers.append(self.store.close)
        self.conductor = Conductor(self.store, cfg.max_attempts, cfg.node_ttl)
        self.scheduler_channel = channel(cfg.scheduler_address, tls.client(cfg))
        self.closers.append(self.scheduler_channel.close)
        self.builds = BuildScheduler(
            self.conductor, scheduler_pb2_grpc.SchedulerServiceStub(self.scheduler_channel),
            auth.service_metadata(cfg.service_token), sweep_interval=self.sweep_interval)
        self.moves = MigrationController(
            self.conductor, scheduler_pb2_grpc.SchedulerServiceStub(self.scheduler_channel),
            auth.service_metadata(cfg.service_token), cfg.allow_resize_to_same_host,
            cfg.resize_confirm_window, sweep_interval=self.sweep_interval)
        self.moves.host_down = self.builds.host_down
        self.election = LeaderElection(self.store, "conductor", ttl=max(3, cfg.node_ttl // 2))
        c = self.conductor

        async def lead() -> None:   # the leader's controllers
            await asyncio.gather(self.builds.lead(), self.moves.lead(),
                                 reservations.run(self.store, cfg.reservation_timeout))
        for work in (c.instances.run(), c.nodes.run(), c.providers.run(), c.networks.run(),
                     self.election.run(lead)):
            self.spawn(work)
        self.server = Server("conductor", cfg.listen or config.DEFAULT_CONDUCTOR_ADDRESS,
                             auth.for_services(cfg), tls.server(cfg))
        self.server.add(conductor_pb2_grpc.add_ConductorServiceServicer_to_server,
                        ConductorServicer(self.conductor),
                        conductor_pb2.DESCRIPTOR.services_by_name["ConductorService"])
        await self.server.start()
        self.closers.append(metrics.add_source(metrics.HOST_ALLOCATED, self._allocated))
        await self.serve_when_ready(c.instances, c.nodes, c.providers, c.networks)
        return self

    def _allocated(self):
        """Each host's claimed resources, from the providers informer."""
        for versioned in list(self.conductor.providers.items.values()):
            usage = versioned.msg
            yield usage.host, {"vcpus": usage.used.vcpus, "memory_mb": usage.used.memory_mb,
                               "disk_gb": usage.used.disk_gb, "servers": usage.consumers}


def main(argv: list[str] | None = None) -> None:
    process.main(ConductorProcess, argv, "nimbus conductor", config.DEFAULT_CONDUCTOR_ADDRESS,
                 process.needs_service_token)
