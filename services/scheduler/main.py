"""nimbus-scheduler: `python -m nimbus.services.scheduler`."""

from __future__ import annotations

from nimbus import config, process
from nimbus.rpc import auth, tls
from nimbus.rpc.server import Server
from nimbus.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from nimbus.services.scheduler.handlers import SchedulerServicer
from nimbus.services.scheduler.host_manager import HostManager
from nimbus.store.store import Store


class SchedulerProcess(process.ServiceProcess):
    async def start(self) -> "SchedulerProcess":
        cfg = self.cfg
        self.store = await Store.for_config(cfg)
        self.closers.append(self.store.close)
        self.hosts = HostManager(self.store)
        self.spawn(self.hosts.nodes.run())
        self.spawn(self.hosts.allocations.run())
        self.spawn(self.hosts.aggregates.run())
        self.spawn(self.hosts.statuses.run())
        self.server = Server("scheduler", cfg.listen or config.DEFAULT_SCHEDULER_ADDRESS,
                             auth.for_services(cfg), tls.server(cfg))
        self.server.add(scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server,
                        SchedulerServicer(self.hosts),
                        scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"])
        await self.server.start()
        await self.serve_when_ready(self.hosts.nodes, self.hosts.allocations,
                                    self.hosts.aggregates, self.hosts.statuses)
        return self


def main(argv: list[str] | None = None) -> None:
    process.main(SchedulerProcess, argv, "nimbus scheduler", config.DEFAULT_SCHEDULER_ADDRESS,
                 process.needs_service_token)
