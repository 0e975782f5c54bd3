"""The common life of a nimbus process: parse the config, start, serve
until SIGINT/SIGTERM, stop (gRPC server first, then background tasks, then
connections)."""

from __future__ import annotations

import asyncio
import gc
from typing import Awaitable, Callable

from nimbus import config, log, metrics
from nimbus.healthport import HealthPort
from nimbus.rpc import auth
from nimbus.rpc.server import Server, wait_for_signal
from nimbus.store.store import etcd_credentials


class ServiceProcess:
    def __init__(self, cfg: config.Config):
        self.cfg = cfg
        self.server: Server | None = None
        self.tasks: list[asyncio.Task] = []
        self.closers: list[Callable[[], Awaitable[None]]] = []

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task

    async def start(self) -> "ServiceProcess":
        raise NotImplementedError

    async def serve_when_ready(self, *informers) -> None:
        """SERVING once every informer has synced, and from then on only
        while etcd answers (the store's probe)."""
        for informer in informers:
            await informer.synced.wait()
        await self.server.set_serving()
        self.spawn(self.server.follow_store(self.store))

    def health_servicer(self):
        """What the health port answers from: the server's own health."""
        return self.server.health

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0.5)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in reversed(self.closers):
            await close()


def _etcd_tls_problem(cfg: config.Config) -> str | None:
    try:
        etcd_credentials(cfg)
    except ValueError as exc:
        return str(exc)
    return None


def main(process: type[ServiceProcess], argv: list[str] | None, description: str,
         default_listen: str = "", check: Callable[[config.Config], str | None] | None = None) -> None:
    log.configure()
    cfg = config.parse(argv, description, default_listen)
    problem = auth.exposure_problem(cfg, cfg.listen or default_listen) or (
        check(cfg) if check else None) or _etcd_tls_problem(cfg)
    if problem:
        raise SystemExit(f"{description}: {problem}")

    async def run() -> None:
        proc = await process(cfg).start()
        if cfg.metrics_address:
            port = metrics.serve(cfg.metrics_address)
            log.get("nimbus.metrics").info("metrics", address=f"{cfg.metrics_address.rpartition(':')[0]}:{port}")
        if cfg.health_address:
            proc.closers.insert(0, (await HealthPort(cfg.health_address,
                                                     proc.health_servicer()).start()).stop)
        # Everything made while starting lives as long as the process: keep it
        # out of the collector's scans, and collect the young generation less
        # often (protobuf and gRPC make many short-lived objects per call;
        # the collector was ~4% of the conductor's CPU in the boot storm).
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        try:
            await wait_for_signal()
        finally:
            await proc.stop()
    asyncio.run(run())


def needs_service_token(cfg: config.Config) -> str | None:
    return None if cfg.service_token else "needs --service-token or NIMBUS_SERVICE_TOKEN"
