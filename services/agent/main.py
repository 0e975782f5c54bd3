"""nimbus-agent: `python -m nimbus.services.agent`.

One agent per hypervisor host. `--simulate N` runs N independent agents in
this process (hosts <host>-001…), each with its own private libvirt test
driver (`test:///<dir>/node.xml`) and capacity: a cluster for tests and
benchmarks."""

from __future__ import annotations

import asyncio
import os
import socket

import grpc
from grpc_health.v1 import health_pb2

from nimbus import config, healthport, metrics, process
from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.conductor.v1 import conductor_pb2_grpc
from nimbus.imagebackend.local import LocalBackend
from nimbus.rpc import auth, tls
from nimbus.rpc.server import channel
from nimbus.services.agent.agent import ComputeAgent
from nimbus.services.agent.tracker import ResourceTracker
from nimbus.state.v1 import records_pb2
from nimbus.clock import now
from nimbus.virt.driver import LibvirtDriver, UnusableVirtType


def test_node_xml(vcpus: int, memory_mb: int) -> str:
    """A libvirt test-driver node description (memory in KiB)."""
    return (f"<node><cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes>"
            f"<sockets>1</sockets><cores>{vcpus}</cores><threads>1</threads>"
            f"<active>{vcpus}</active></cpu><memory>{memory_mb * 1024}</memory></node>")


def make_backend(cfg: config.Config, instances_path: str):
    if cfg.image_backend == "qcow2":
        return LocalBackend(instances_path, cfg.force_raw_images)
    if cfg.image_backend == "rbd":
        from nimbus.imagebackend.rbd import RbdBackend   # needs Ceph's python modules
        if not cfg.ceph_conf:
            raise SystemExit("image_backend rbd needs --ceph-conf")
        return RbdBackend(cfg.ceph_conf, images_pool=cfg.rbd_images_pool,
                          vms_pool=cfg.rbd_vms_pool,
                          cache_dir=os.path.join(instances_path, "_base"))
    raise SystemExit(f"image_backend must be qcow2 or rbd, not {cfg.image_backend!r}")


class AgentProcess(process.ServiceProcess):
    def __init__(self, cfg: config.Config):
        super().__init__(cfg)
        self.agents: list[ComputeAgent] = []
        # The agent serves no RPCs: its health (NIMBUS_HEALTH_ADDRESS) says
        # whether it is connected to the conductor.
        self.health = healthport.not_serving()

    def health_servicer(self):
        return self.health

    def connected(self) -> bool:
        """Every host has had its assignments from the conductor, and the
        channel they come over is up now."""
        state = self.conductor_channel.get_state(try_to_connect=False)
        return state == grpc.ChannelConnectivity.READY and all(
            agent.synced.is_set() for agent in self.agents)

    async def _follow_connection(self, interval: float = 1.0) -> None:
        serving = None
        while True:
            now_serving = self.connected()
            if now_serving != serving:
                serving = now_serving
                await self.health.set("", health_pb2.HealthCheckResponse.SERVING if serving
                                      else health_pb2.HealthCheckResponse.NOT_SERVING)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        await self.health.enter_graceful_shutdown()
        await super().stop()

    async def _make(self, host: str, uri: str, instances_path: str) -> ComputeAgent:
        cfg = self.cfg
        driver = LibvirtDriver(uri, cfg.virt_type, instances_path)
        await driver.connect()
        backend = make_backend(cfg, instances_path)
        vcpus, memory_mb = await driver.inventory()
        disk_gb = cfg.disk_gb or (await backend.capacity_gb())[0]
        node = records_pb2.NodeRecord(
            host=host, hypervisor_type=cfg.virt_type,
            total=records_pb2.Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb),
            reserved=records_pb2.Resources(memory_mb=cfg.reserved_host_memory_mb),
            cpu_allocation_ratio=cfg.cpu_allocation_ratio,
            ram_allocation_ratio=cfg.ram_allocation_ratio,
            disk_allocation_ratio=cfg.disk_allocation_ratio, started_at=now())
        agent = ComputeAgent(host, driver, backend, ResourceTracker(node),
                             conductor_pb2_grpc.ConductorServiceStub(self.conductor_channel),
                             compute_pb2_grpc.ComputeServiceStub(self.api_channel),
                             credentials(host_token(cfg, host)), node)
        agent.force_config_drive = cfg.force_config_drive
        agent.power_sync_interval = cfg.power_sync_interval
        agent.shutdown_timeout = cfg.shutdown_timeout
        agent.resume_guests_state_on_host_boot = cfg.resume_guests_state_on_host_boot
        return agent

    async def start(self) -> "AgentProcess":
        cfg = self.cfg
        self.conductor_channel = channel(cfg.conductor_address, tls.client(cfg))
        self.api_channel = channel(cfg.api_address, tls.client(cfg))
        self.closers += [self.conductor_channel.close, self.api_channel.close]
        base_host = cfg.host or socket.gethostname()
        if cfg.simulate:
            root = os.path.abspath(os.path.join(cfg.state_dir, "sim"))
            for i in range(1, cfg.simulate + 1):
                host = f"{base_host}-{i:03d}"
                host_dir = os.path.join(root, host)
                os.makedirs(host_dir, exist_ok=True)
                node_xml = os.path.join(host_dir, "node.xml")
                with open(node_xml, "w") as f:
                    f.write(test_node_xml(cfg.vcpus, cfg.memory_mb))
                self.agents.append(await self._make(host, f"test://{node_xml}",
                                                    os.path.join(host_dir, "instances")))
        else:
            uri = cfg.libvirt_uri
            if uri == "test:///default" or uri.startswith("test://") and not uri.endswith(".xml"):
                # The shared default test driver has a fixed size; give this
                # host the configured one through a private node file.
                host_dir = os.path.abspath(os.path.join(cfg.state_dir, "hosts", base_host))
                os.makedirs(host_dir, exist_ok=True)
                node_xml = os.path.join(host_dir, "node.xml")
                with open(node_xml, "w") as f:
                    f.write(test_node_xml(cfg.vcpus, cfg.memory_mb))
                uri = f"test://{node_xml}"
            self.agents.append(await self._make(base_host, uri, os.path.abspath(cfg.instances_path)))
        for agent in self.agents:
            self.closers.append(agent.driver.close)
            self.spawn(agent.run())
        self.spawn(self._follow_connection())
        self.closers.append(metrics.add_source(metrics.HOST_DOMAINS, self._domains))
        return self

    def _domains(self):
        """libvirt domains per host and state, read at scrape time (the
        scrape runs in prometheus-client's thread; libvirt is thread-safe)."""
        for agent in self.agents:
            conn = agent.driver.conn
            if conn is not None:
                yield agent.host, {"active": conn.numOfDomains(),
                                   "defined": conn.numOfDefinedDomains()}


def host_token(cfg: config.Config, host: str) -> str:
    """What a host presents: its own host token, or one derived from the
    service token (development, --simulate: many hosts in one process), or
    nothing: its client certificate (CN agent.<host>) says who it is."""
    if cfg.agent_token or not cfg.service_token:
        return cfg.agent_token
    return auth.agent_token(cfg.service_token, host)


def credentials(token: str) -> tuple:
    return auth.service_metadata(token) if token else ()


def check(cfg: config.Config) -> str | None:
    if cfg.agent_token:
        host = cfg.host or socket.gethostname()
        if cfg.simulate:
            return "--agent-token is one host's: it cannot serve --simulate"
        if not cfg.agent_token.startswith(f"{auth.AGENT_PREFIX}{host}."):
            return f"--agent-token is not host {host}'s (python -m nimbus.rpc.auth agent-token {host})"
        return None
    if cfg.service_token:
        return None
    if cfg.tls_cert and cfg.tls_key and cfg.tls_ca:
        return "a client certificate is one host's: it cannot serve --simulate" if cfg.simulate \
            else None
    return ("needs --agent-token (NIMBUS_AGENT_TOKEN, this host's), a client certificate "
            "(--tls-cert/--tls-key/--tls-ca, CN agent.<host>, servers with --tls-client-auth) "
            "or a service token (development)")


def main(argv: list[str] | None = None) -> None:
    try:
        process.main(AgentProcess, argv, "nimbus compute agent", "", check)
    except UnusableVirtType as exc:
        raise SystemExit(f"nimbus agent: {exc}") from None
