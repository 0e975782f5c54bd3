"""Prometheus metrics: every one nimbus exports, defined here once.

Each process serves its registry over HTTP on `--metrics-address`
(NIMBUS_METRICS_ADDRESS; empty: none). Counters move where the thing
happens (the interceptor for RPCs, the store for etcd transactions, the
informer for relists, the conductor for build outcomes); per-host gauges
are read at scrape time from state the process already keeps (`add_source`),
so nothing is updated on a hot path that nobody scrapes.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Iterable

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RPCS = Counter("nimbus_rpc_requests", "RPCs handled, by service, method and status code",
               ["service", "method", "code"])
RPC_SECONDS = Histogram("nimbus_rpc_duration_seconds", "RPC handling time",
                        ["service", "method"],
                        buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
ETCD_TXNS = Counter("nimbus_etcd_transactions", "etcd transactions sent, by outcome",
                    ["outcome"])   # succeeded | compare_failed
WATCH_RELISTS = Counter("nimbus_watch_relists", "Informer relists (start, or a broken watch)",
                        ["prefix"])
BUILDS = Counter("nimbus_builds", "Builds that ended, by outcome", ["outcome"])  # active | error
RESCHEDULES = Counter("nimbus_reschedules", "Builds handed back for another host")
TIME_TO_ACTIVE = Histogram("nimbus_time_to_active_seconds",
                           "From the create's record to ACTIVE",
                           buckets=(.1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300))
RETRIES = Counter("nimbus_retries", "Work tried again after a failure, by component and reason",
                  ["component", "reason"])
QUEUE_DEPTH = Histogram("nimbus_queue_depth", "Items waiting when a group commit starts",
                        ["queue"], buckets=(1, 2, 4, 8, 16, 32, 64, 128))
CONTROLLER_RETRIES = Counter("nimbus_controller_retries",
                             "Keys a controller runs again after their work failed, by controller",
                             ["controller"])


Reader = Callable[[], Iterable[tuple[str, dict[str, float]]]]


class _PerHost(Collector):
    """A gauge family read at scrape time from every registered source:
    each yields (host, {label value: value})."""

    def __init__(self, name: str, documentation: str, label: str):
        self.name, self.documentation, self.label = name, documentation, label
        self.sources: list[Reader] = []

    def collect(self):
        family = GaugeMetricFamily(self.name, self.documentation, labels=["host", self.label])
        for read in list(self.sources):
            for host, values in read():
                for key, value in values.items():
                    family.add_metric([host, key], value)
        yield family


HOST_ALLOCATED = _PerHost("nimbus_host_allocated", "Resources allocated on each compute host "
                          "(the conductor's view of the claims)", "resource")
HOST_DOMAINS = _PerHost("nimbus_host_domains", "libvirt domains on each compute host (agents)",
                        "state")
for _family in (HOST_ALLOCATED, HOST_DOMAINS):
    REGISTRY.register(_family)


class _ControllerQueues(Collector):
    """nimbus_controller_queued_keys, read at scrape time: each running
    controller's count, summed by name (one agent process runs a controller
    per simulated host)."""

    def __init__(self):
        self.controllers: list["ControllerMetrics"] = []

    def collect(self):
        family = GaugeMetricFamily("nimbus_controller_queued_keys",
                                   "Keys a controller has work for (waiting, running or in backoff)",
                                   labels=["controller"])
        totals: dict[str, int] = {}
        for c in list(self.controllers):
            totals[c.name] = totals.get(c.name, 0) + c.queued()
        for name, total in sorted(totals.items()):
            family.add_metric([name], total)
        yield family


CONTROLLER_QUEUES = _ControllerQueues()
REGISTRY.register(CONTROLLER_QUEUES)


class ControllerMetrics:
    """What every controller reports, in one place: its queued keys (read
    from the controller at scrape time by `queued`, so the controller's hot
    path pays nothing) and its retries. `start` when it begins leading,
    `stop` when it ends (a stopped controller's leftovers are not counted)."""

    def __init__(self, name: str, queued: Callable[[], int]):
        self.name, self.queued = name, queued
        self._retries = CONTROLLER_RETRIES.labels(name)

    def start(self) -> None:
        if self not in CONTROLLER_QUEUES.controllers:
            CONTROLLER_QUEUES.controllers.append(self)

    def stop(self) -> None:
        if self in CONTROLLER_QUEUES.controllers:
            CONTROLLER_QUEUES.controllers.remove(self)

    def retried(self, keys: int = 1) -> None:
        self._retries.inc(keys)


def add_source(family: _PerHost, read: Reader) -> Callable[[], Awaitable[None]]:
    """Read `read` at every scrape; returns the (async, for a process's
    closers) function that stops it."""
    family.sources.append(read)

    async def stop() -> None:
        if read in family.sources:
            family.sources.remove(read)
    return stop


def serve(address: str) -> int:
    """Serve /metrics on host:port (port 0: a free one); returns the port."""
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    return server.server_address[1]
