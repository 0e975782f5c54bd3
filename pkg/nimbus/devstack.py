"""`make run`: the whole nimbus stack on one machine, in the foreground.

etcd (Debian's etcd-server binary) keeps its data in .nimbus/etcd, so state
survives a restart; the API, conductor, scheduler and one compute agent on
the libvirt test driver run as child processes. Default flavors and a small
qcow2 image are seeded through the API on first start. Ctrl-C stops
everything this started, etcd included.

`ProcessStack` is reused by the benchmark (bench/boot_storm.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nimbus import config
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.dbseed import seed_datastores
from nimbus.etcd import EmbeddedEtcd
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store

DEFAULT_FLAVORS = [  # name, vCPUs, RAM MB, disk GB (Nova's classic m1 set)
    ("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20), ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80)]
DEFAULT_IMAGE = "cirros"
# The processes serving Prometheus /metrics under `make run`, in --metrics-ports order.
METRICS_PROCESSES = ("compute", "conductor", "scheduler", "agent", "volume", "database")
ADMIN = (("authorization", "Bearer admin:admin"),)


def service_token(state_dir: str) -> str:
    """A per-installation secret for internal calls, kept 0600 in the state dir."""
    path = os.path.join(state_dir, "service-token")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(24))
    with open(path) as f:
        return f.read().strip()


class ProcessStack:
    """etcd plus the four nimbus processes, each its own OS process."""

    def __init__(self, state_dir: str, etcd_port: int = 2379, etcd_peer_port: int = 2380,
                 api: str = config.DEFAULT_API_ADDRESS,
                 conductor: str = config.DEFAULT_CONDUCTOR_ADDRESS,
                 scheduler: str = config.DEFAULT_SCHEDULER_ADDRESS, agent_args: list[str] = (),
                 database: str | None = config.DEFAULT_DATABASE_ADDRESS,
                 volume: str = config.DEFAULT_VOLUME_ADDRESS,
                 log_dir: str | None = None, quiet: bool = False,
                 metrics: dict[str, str] | None = None):
        """`metrics`: process name -> host:port serving its Prometheus /metrics."""
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.log_dir = log_dir
        self.quiet = quiet
        self.etcd = EmbeddedEtcd(os.path.join(self.state_dir, "etcd"), etcd_port, etcd_peer_port,
                                 log_file=os.path.join(self.state_dir, "etcd.log"))
        self.api, self.conductor, self.scheduler = api, conductor, scheduler
        self.database = database
        self.volume = volume
        self.agent_args = list(agent_args)
        self.children: dict[str, subprocess.Popen] = {}
        self.metrics = dict(metrics or {})

    def _env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "NIMBUS_ETCD_ENDPOINT": self.etcd.endpoint, "NIMBUS_API_ADDRESS": self.api,
            "NIMBUS_CONDUCTOR_ADDRESS": self.conductor, "NIMBUS_SCHEDULER_ADDRESS": self.scheduler,
            "NIMBUS_STATE_DIR": self.state_dir, "NIMBUS_LOG_FORMAT": env.get("NIMBUS_LOG_FORMAT", "console"),
            # The token goes through the environment, never argv (ps shows argv).
            "NIMBUS_SERVICE_TOKEN": service_token(self.state_dir)})
        return env

    def _spawn(self, name: str, *args: str) -> None:
        out = None
        if self.log_dir or self.quiet:
            os.makedirs(self.log_dir or self.state_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir or self.state_dir, f"{name}.log"), "ab")
        env = self._env()
        if name in self.metrics:
            env["NIMBUS_METRICS_ADDRESS"] = self.metrics[name]
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", f"nimbus.services.{name}", *args], env=env,
            stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def start(self) -> "ProcessStack":
        self.etcd.start()
        self._spawn("scheduler", "--listen", self.scheduler)
        self._spawn("conductor", "--listen", self.conductor,
                    "--allow-resize-to-same-host")   # one host: resizes stay on it
        self._spawn("compute", "--listen", self.api, "--noauth")
        for name, address in (("scheduler", self.scheduler), ("conductor", self.conductor),
                              ("compute", self.api)):
            self.wait_serving(name, address)
        self._spawn("agent", *self.agent_args)
        # The volume manager (cinder-volume) with the file backend: raw files
        # under <state>/volumes, on this machine only. VolumeService itself
        # is served by the API on its port.
        self._spawn("volume", "--listen", self.volume, "--volume-backend", "file")
        self.wait_serving("volume", self.volume)
        if self.database:   # DatabaseService (trove); usage_timeout 5 min instead of Trove's 30
            # Guests that ran before a restart run again (as the agent's servers).
            self._spawn("database", "--listen", self.database, "--noauth", "--usage-timeout", "300",
                        "--resume-guests-state-on-host-boot")
            self.wait_serving("database", self.database)
        return self

    def wait_serving(self, name: str, address: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                if self.children[name].poll() is not None:
                    raise RuntimeError(f"{name} exited with {self.children[name].returncode}")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not become SERVING on {address}")

    def pids(self) -> dict[str, int]:
        out = {name: p.pid for name, p in self.children.items()}
        if self.etcd.process:
            out["etcd"] = self.etcd.process.pid
        return out

    def stop(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.children.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()
        # Database guests run in sessions of their own (they outlive a restart
        # of DatabaseService, which adopts them); `make run` stops them too.
        from nimbus.services.database.simulation import stop_all
        stop_all(os.path.join(self.state_dir, "guests"))
        self.etcd.stop()


async def seed(api_address: str, state_dir: str) -> C.Image:
    """Default flavors and one small qcow2 image, unless they exist."""
    async with grpc.aio.insecure_channel(api_address) as ch:
        api = compute_pb2_grpc.ComputeServiceStub(ch)
        have = {f.name for f in (await api.ListFlavors(C.ListFlavorsRequest(), metadata=ADMIN)).flavors}
        for name, vcpus, ram, disk in DEFAULT_FLAVORS:
            if name not in have:
                await api.CreateFlavor(C.CreateFlavorRequest(flavor=C.Flavor(
                    id=name, name=name, vcpus=vcpus, ram_mb=ram, disk_gb=disk, is_public=True)),
                    metadata=ADMIN)
        images = (await api.ListImages(C.ListImagesRequest(), metadata=ADMIN)).images
        existing = [i for i in images if i.name == DEFAULT_IMAGE]
        if existing:
            return existing[0]
        path = os.path.join(state_dir, "cirros.qcow2")
        # A real (blank) 64 MiB qcow2: bootable on the test driver; upload a
        # real guest image for QEMU.
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)

        async def messages():
            yield C.CreateImageRequest(image=C.Image(name=DEFAULT_IMAGE, disk_format="qcow2",
                                                     visibility="public"))
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield C.CreateImageRequest(chunk=chunk)
        return (await api.CreateImage(messages(), metadata=ADMIN)).image


DEFAULT_NETWORK, DEFAULT_CIDR = "private", "10.0.0.0/24"


async def seed_network(api_address: str) -> None:
    """A network every project shares, so a plain boot gets an address (as
    devstack's `private`), unless one of that name exists. Plain data on the
    test driver: no packet goes anywhere."""
    from nimbus.compute.v1 import networks_pb2 as N
    from nimbus.compute.v1 import networks_pb2_grpc
    async with grpc.aio.insecure_channel(api_address) as ch:
        net = networks_pb2_grpc.NetworkServiceStub(ch)
        existing = (await net.ListNetworks(N.ListNetworksRequest(), metadata=ADMIN)).networks
        if any(n.name == DEFAULT_NETWORK for n in existing):
            return
        network = (await net.CreateNetwork(N.CreateNetworkRequest(
            name=DEFAULT_NETWORK, shared=True), metadata=ADMIN)).network
        await net.CreateSubnet(N.CreateSubnetRequest(network_id=network.id, cidr=DEFAULT_CIDR),
                               metadata=ADMIN)


async def wait_bootable(etcd_endpoint: str, api_address: str, host: str, image_id: str,
                        timeout: float = 60) -> None:
    """Until a CreateServer sent now can succeed: the compute host has
    registered (its node record, on its lease) and the image is ACTIVE.
    Health alone says less: the API is SERVING before any host is up."""
    store = await Store.connect(etcd_endpoint)
    try:
        async with grpc.aio.insecure_channel(api_address) as ch, asyncio.timeout(timeout):
            api = compute_pb2_grpc.ComputeServiceStub(ch)
            while (await store.get(keys.node(host), records_pb2.NodeRecord)) is None or (
                    await api.GetImage(C.GetImageRequest(ref=image_id), metadata=ADMIN)
            ).image.status != C.IMAGE_STATUS_ACTIVE:
                await asyncio.sleep(0.1)
    finally:
        await store.close()


BANNER = """
nimbus is running (Ctrl-C stops everything).

  ComputeService  {api}      (grpcurl -plaintext {api} list)
  Conductor       {conductor}
  Scheduler       {scheduler}
  etcd            {etcd}     (data in {state}/etcd)
  DatabaseService {database}      datastores {datastores}
  VolumeService   on {api}; its volume manager (file backend, this machine only) health on {volume}
  compute host    {host} on the libvirt test driver
  metrics         {metrics}  (Prometheus, /metrics)
  image           {image_name} ({image_id}); flavors m1.tiny m1.small m1.medium m1.large
  network         private (10.0.0.0/24, shared): a plain boot gets an address there

Auth is development 'noauth': 'Bearer <user>:<project>'; the user 'admin' is an admin.

Boot a server, then watch it become ACTIVE:

  grpcurl -plaintext -H 'authorization: Bearer alice:demo' \\
    -d '{{"name":"web-1","image_ref":"cirros","flavor_ref":"m1.tiny"}}' \\
    {api} nimbus.compute.v1.ComputeService/CreateServer

  grpcurl -plaintext -H 'authorization: Bearer alice:demo' -d '{{}}' \\
    {api} nimbus.compute.v1.ComputeService/WatchServers
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the whole nimbus stack locally")
    parser.add_argument("--state-dir", default=os.environ.get("NIMBUS_STATE_DIR", ".nimbus"))
    parser.add_argument("--etcd-port", type=int, default=2379)
    parser.add_argument("--host", default="compute-1", help="the compute host's name")
    parser.add_argument("--api", default=config.DEFAULT_API_ADDRESS)
    parser.add_argument("--conductor", default=config.DEFAULT_CONDUCTOR_ADDRESS)
    parser.add_argument("--scheduler", default=config.DEFAULT_SCHEDULER_ADDRESS)
    parser.add_argument("--metrics-ports", default="9774,9775,9776,9777,9778,9779",
                        help="Prometheus /metrics ports of compute,conductor,scheduler,agent,"
                             "volume,database (the manifests' ports)")
    parser.add_argument("--database-address",
                        default=os.environ.get("NIMBUS_DATABASE_ADDRESS", config.DEFAULT_DATABASE_ADDRESS))
    parser.add_argument("--volume-address", help="the volume manager's health port",
                        default=os.environ.get("NIMBUS_VOLUME_ADDRESS", config.DEFAULT_VOLUME_ADDRESS))
    args = parser.parse_args(argv)
    stack = ProcessStack(args.state_dir, etcd_port=args.etcd_port, etcd_peer_port=args.etcd_port + 1,
                         api=args.api, conductor=args.conductor, scheduler=args.scheduler,
                         agent_args=["--host", args.host,
                                     # Guests that ran before a restart run again.
                                     "--resume-guests-state-on-host-boot"],
                         database=args.database_address, volume=args.volume_address,
                         metrics={name: f"127.0.0.1:{port}" for name, port in zip(
                             METRICS_PROCESSES, args.metrics_ports.split(","))})
    stopping = False

    def on_signal(*_):
        nonlocal stopping
        if stopping:
            return   # a second Ctrl-C (or a TERM forwarded twice) must not cut the clean-up short
        stopping = True
        raise KeyboardInterrupt

    # Both, explicitly: a shell starting us in the background ignores SIGINT.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        image = asyncio.run(seed(stack.api, stack.state_dir))
        asyncio.run(seed_network(stack.api))
        datastores = asyncio.run(seed_datastores(stack.database, image.name, ADMIN))
        asyncio.run(wait_bootable(stack.etcd.endpoint, stack.api, args.host, image.id))
        print(BANNER.format(api=stack.api, conductor=stack.conductor, scheduler=stack.scheduler,
                            etcd=stack.etcd.endpoint, state=stack.state_dir, host=args.host,
                            image_name=image.name, image_id=image.id, database=stack.database,
                            volume=stack.volume,
                            datastores=", ".join(datastores),
                            metrics=" ".join(f"{n} {a}" for n, a in stack.metrics.items())),
              flush=True)
        while True:
            for name, proc in stack.children.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode}; stopping")
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping nimbus…", flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
