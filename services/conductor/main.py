"""nimbus-conductor: `python -m nimbus.services.conductor`.

Every conductor serves agents (streams, updates, node reports); one of them,
elected over an etcd lease, also runs the scheduling loop and the sweeper."""

from __future__ import annotations

import asyncio

from nimbus import config, log
from nimbus.conductor.v1 import conductor_pb2, conductor_pb2_grpc
from nimbus.rpc import auth
from nimbus.rpc.server import Server, channel, wait_for_signal
from nimbus.scheduler.v1 import scheduler_pb2_grpc
from nimbus.services.conductor.handlers import Conductor, ConductorServicer
from nimbus.services.conductor.scheduling import BuildScheduler
from nimbus.store.election import LeaderElection
from nimbus.store.store import Store


class ConductorProcess:
    def __init__(self, cfg: config.Config, sweep_interval: float = 2.0):
        self.cfg = cfg
        self.sweep_interval = sweep_interval
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> "ConductorProcess":
        cfg = self.cfg
        self.store = await Store.connect(cfg.etcd_endpoint, cfg.etcd_prefix)
        self.conductor = Conductor(self.store, cfg.max_attempts, cfg.node_ttl)
        self.scheduler_channel = channel(cfg.scheduler_address)
        self.builds = BuildScheduler(
            self.conductor, scheduler_pb2_grpc.SchedulerServiceStub(self.scheduler_channel),
            auth.service_metadata(cfg.service_token), sweep_interval=self.sweep_interval)
        self.election = LeaderElection(self.store, "conductor", ttl=max(3, cfg.node_ttl // 2))
        c = self.conductor
        self.tasks = [asyncio.create_task(c.instances.run()), asyncio.create_task(c.nodes.run()),
                      asyncio.create_task(c.providers.run()),
                      asyncio.create_task(self.election.run(self.builds.lead))]
        self.server = Server("conductor", cfg.listen or config.DEFAULT_CONDUCTOR_ADDRESS,
                             auth.Authenticator(service_token=cfg.service_token))
        self.server.add(conductor_pb2_grpc.add_ConductorServiceServicer_to_server,
                        ConductorServicer(self.conductor),
                        conductor_pb2.DESCRIPTOR.services_by_name["ConductorService"])
        await self.server.start()
        for informer in (c.instances, c.nodes, c.providers):
            await informer.synced.wait()
        await self.server.set_serving()
        return self

    async def stop(self) -> None:
        await self.server.stop(0.5)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.scheduler_channel.close()
        await self.store.close()


async def _run(cfg: config.Config) -> None:
    proc = await ConductorProcess(cfg).start()
    await wait_for_signal()
    await proc.stop()


def main(argv: list[str] | None = None) -> None:
    log.configure()
    cfg = config.parse(argv, "nimbus conductor", config.DEFAULT_CONDUCTOR_ADDRESS)
    if not cfg.service_token:
        raise SystemExit("the conductor needs --service-token or NIMBUS_SERVICE_TOKEN")
    asyncio.run(_run(cfg))
