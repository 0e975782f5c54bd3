"""nimbus-scheduler: `python -m nimbus.services.scheduler`."""

from __future__ import annotations

import asyncio

from nimbus import config, log
from nimbus.rpc import auth
from nimbus.rpc.server import Server, wait_for_signal
from nimbus.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from nimbus.services.scheduler.handlers import HostManager, SchedulerServicer
from nimbus.store.store import Store


class SchedulerProcess:
    def __init__(self, cfg: config.Config):
        self.cfg = cfg
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> "SchedulerProcess":
        cfg = self.cfg
        self.store = await Store.connect(cfg.etcd_endpoint, cfg.etcd_prefix)
        self.hosts = HostManager(self.store)
        self.tasks = [asyncio.create_task(self.hosts.nodes.run()),
                      asyncio.create_task(self.hosts.allocations.run())]
        self.server = Server("scheduler", cfg.listen or config.DEFAULT_SCHEDULER_ADDRESS,
                             auth.Authenticator(service_token=cfg.service_token))
        self.server.add(scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server,
                        SchedulerServicer(self.hosts),
                        scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"])
        await self.server.start()
        await self.hosts.nodes.synced.wait()
        await self.hosts.allocations.synced.wait()
        await self.server.set_serving()
        return self

    async def stop(self) -> None:
        await self.server.stop(0.5)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.store.close()


async def _run(cfg: config.Config) -> None:
    proc = await SchedulerProcess(cfg).start()
    await wait_for_signal()
    await proc.stop()


def main(argv: list[str] | None = None) -> None:
    log.configure()
    cfg = config.parse(argv, "nimbus scheduler", config.DEFAULT_SCHEDULER_ADDRESS)
    if not cfg.service_token:
        raise SystemExit("the scheduler needs --service-token or NIMBUS_SERVICE_TOKEN")
    asyncio.run(_run(cfg))
