"""A whole nimbus stack in this process, for tests and benchmarks: the API,
scheduler, conductor and N simulated compute hosts on loopback gRPC with
free ports, against a real etcd (each stack under its own key prefix)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nimbus import config
from nimbus.compute.v1 import compute_pb2, compute_pb2_grpc
from nimbus.etcd import free_port
from nimbus.rpc import tls
from nimbus.rpc.server import channel
from nimbus.services.agent.main import AgentProcess
from nimbus.services.compute.main import ComputeProcess
from nimbus.services.conductor.main import ConductorProcess
from nimbus.services.scheduler.main import SchedulerProcess
from nimbus.store.store import Store

C = compute_pb2
ADMIN = (("authorization", "Bearer admin:admin"),)


def user(name: str = "alice", project: str = "demo") -> tuple:
    return (("authorization", f"Bearer {name}:{project}"),)


def make_qcow2(path: str, size: str = "64M") -> str:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, size], check=True)
    return path


class ServiceSubprocess:
    """A nimbus service in a process of its own (`python -m <module>`), for
    tests that kill -9 it and start it again on the same address. The config
    travels in NIMBUS_* variables (the service token never in argv)."""

    def __init__(self, module: str, cfg: config.Config, log_path: str, env: dict | None = None):
        self.module = module
        self.cfg = cfg
        self.log_path = log_path
        self.extra_env = dict(env or {})   # e.g. NIMBUS_CRASH_AT for the first run
        self.proc: subprocess.Popen | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for field in dataclasses.fields(config.Config):
            value = getattr(self.cfg, field.name)
            env["NIMBUS_" + field.name.upper()] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value))
        return env | self.extra_env

    async def start(self, timeout: float = 30, health: bool = True) -> "ServiceSubprocess":
        """Start it; with `health`, wait until its gRPC health says SERVING
        (an agent serves nothing: its caller waits for its hosts instead)."""
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], env=self._env(),
                                         stdout=log_file, stderr=subprocess.STDOUT)
        if not health:
            return self
        async with channel(self.cfg.listen, tls.client(self.cfg)) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            async with asyncio.timeout(timeout):
                while True:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"{self.module} exited {self.proc.returncode}; "
                                           f"see {self.log_path}")
                    try:
                        resp = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                        if resp.status == health_pb2.HealthCheckResponse.SERVING:
                            return self
                    except grpc.aio.AioRpcError:
                        pass
                    await asyncio.sleep(0.05)

    async def exited(self, timeout: float) -> int:
        """Its exit status, once it has exited by itself (a crash point)."""
        return await asyncio.to_thread(self.proc.wait, timeout)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.kill()


class Stack:
    def __init__(self, etcd_endpoint: str, state_dir: str, hosts: int = 2, vcpus: int = 8,
                 memory_mb: int = 16384, disk_gb: int = 200, reserved_host_memory_mb: int = 0,
                 node_ttl: int = 10, sweep_interval: float = 2.0, power_sync_interval: float = 10.0,
                 real_host: str | None = None, subprocesses: tuple[str, ...] = (),
                 crash_at: str = "", tls_on: bool = False, volume_manager: bool = False,
                 **extra):
        """`hosts` simulated hosts on private test drivers, or, with
        `real_host`, one agent of that name on the libvirt URI in `extra`.
        `subprocesses` names the parts ("compute", "conductor", "agent") that
        run as processes of their own (each then a ServiceSubprocess: kill(),
        start(), exited()); `crash_at` sets NIMBUS_CRASH_AT for their first
        run (nimbus.crashpoints). `tls_on` serves every listener with TLS from
        a CA made for the stack (self.ca; the certificate in state_dir/tls),
        and every internal client verifies it; `auth="jwt"` in `extra`
        (with the jwt_*/jwks_* settings) replaces noauth. `volume_manager`
        starts a volume manager (file backend unless `volume_backend` in
        `extra`; "volume" in `subprocesses` runs it as a process)."""
        self.subprocesses = frozenset(subprocesses)
        self.volume_manager = None
        self.wants_volume_manager = volume_manager
        self.crash_env = {"NIMBUS_CRASH_AT": crash_at} if crash_at else {}
        self.ca = None
        if tls_on:
            from credentials import CA
            tls_dir = os.path.join(state_dir, "tls")
            os.makedirs(tls_dir, exist_ok=True)
            self.ca = CA()
            cert, key = self.ca.issue(tls_dir, "nimbus")
            extra.update(tls_cert=cert, tls_key=key, tls_ca=self.ca.write(
                os.path.join(tls_dir, "ca.crt")))
        self.cfg = config.Config(
            etcd_endpoint=etcd_endpoint, etcd_prefix=f"/t-{uuid.uuid4().hex[:8]}/",
            api_address=f"127.0.0.1:{free_port()}", conductor_address=f"127.0.0.1:{free_port()}",
            scheduler_address=f"127.0.0.1:{free_port()}", service_token=secrets.token_hex(16),
            noauth=extra.get("auth", "") in ("", "noauth"), state_dir=state_dir, host=real_host or "sim",
            simulate=0 if real_host else hosts, vcpus=vcpus,
            memory_mb=memory_mb, disk_gb=disk_gb, reserved_host_memory_mb=reserved_host_memory_mb,
            cpu_allocation_ratio=1.0, node_ttl=node_ttl, power_sync_interval=power_sync_interval,
            **extra)
        self.sweep_interval = sweep_interval

    def _for(self, address: str) -> config.Config:
        cfg = config.Config(**vars(self.cfg))
        cfg.listen = address
        return cfg

    def _subprocess(self, name: str, cfg: config.Config) -> ServiceSubprocess:
        return ServiceSubprocess(f"nimbus.services.{name}", cfg,
                                 os.path.join(self.cfg.state_dir, f"{name}.log"), self.crash_env)

    async def start_conductor(self):
        if "conductor" in self.subprocesses:
            self.conductor = await self._subprocess(
                "conductor", self._for(self.cfg.conductor_address)).start()
        else:
            self.conductor = await ConductorProcess(self._for(self.cfg.conductor_address),
                                                    self.sweep_interval).start()
        return self.conductor

    async def __aenter__(self) -> "Stack":
        # The tests' own view of etcd (a conductor may be another process).
        self.store = await Store.for_config(self.cfg)
        self.scheduler = await SchedulerProcess(self._for(self.cfg.scheduler_address)).start()
        await self.start_conductor()
        if "compute" in self.subprocesses:
            self.compute = await self._subprocess("compute", self._for(self.cfg.api_address)).start()
        else:
            self.compute = await ComputeProcess(self._for(self.cfg.api_address)).start()
        if "agent" in self.subprocesses:
            self.agents = await self._subprocess("agent", self.cfg).start(health=False)
        else:
            self.agents = await AgentProcess(self.cfg).start()
        self.channel = channel(self.cfg.api_address, tls.client(self.cfg))
        self.api = compute_pb2_grpc.ComputeServiceStub(self.channel)
        from nimbus.volume.v1 import volume_pb2_grpc
        self.volumes = volume_pb2_grpc.VolumeServiceStub(self.channel)
        if self.wants_volume_manager:
            await self.start_volume_manager()
        await self.wait_hosts(self.cfg.simulate or 1)
        return self

    async def start_volume_manager(self):
        if not hasattr(self, "volume_address"):
            self.volume_address = f"127.0.0.1:{free_port()}"
        if "volume" in self.subprocesses:
            self.volume_manager = await self._subprocess("volume", self._for(self.volume_address)).start()
        else:
            from nimbus.services.volume.main import VolumeManagerProcess
            self.volume_manager = await VolumeManagerProcess(self._for(self.volume_address)).start()
        return self.volume_manager

    async def wait_hosts(self, count: int, timeout: float = 20) -> None:
        """Until `count` nodes are registered (the scheduler can see them)."""
        async def ready():
            while len(self.scheduler.hosts.nodes.items) < count or not all(
                    a.synced.is_set() for a in getattr(self.agents, "agents", ())):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(ready(), timeout)

    async def __aexit__(self, *exc) -> None:
        await self.channel.close()
        for proc in (self.volume_manager, self.agents, self.compute, self.conductor, self.scheduler):
            if proc is not None:
                await proc.stop()
        await self.store.close()

    # ---- helpers ------------------------------------------------------------

    async def flavor(self, name: str, vcpus: int = 1, ram_mb: int = 512, disk_gb: int = 1) -> C.Flavor:
        resp = await self.api.CreateFlavor(C.CreateFlavorRequest(flavor=C.Flavor(
            name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb)), metadata=ADMIN)
        return resp.flavor

    async def image(self, path: str, name: str = "cirros", disk_format: str = "qcow2",
                    properties: dict | None = None, visibility: str = "public",
                    metadata=ADMIN) -> C.Image:
        async def messages():
            yield C.CreateImageRequest(image=C.Image(name=name, disk_format=disk_format,
                                                     properties=properties or {},
                                                     visibility=visibility))
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield C.CreateImageRequest(chunk=chunk)
        return (await self.api.CreateImage(messages(), metadata=metadata)).image

    async def wait_for(self, server_id: str, predicate, metadata=ADMIN, timeout: float = 30):
        """Wait on WatchServers (never poll) until predicate(server) holds;
        predicate(None) is asked when the server is deleted."""
        from nimbus.watch import absent_unless_read, until
        call = self.api.WatchServers(C.WatchServersRequest(id=server_id, all_projects=True),
                                     metadata=metadata)
        # Not in the API's list: gone before we started watching, or too new
        # for its informer yet (then its UPSERT follows). A read tells.
        gone = absent_unless_read(lambda: self.api.GetServer(
            C.GetServerRequest(id=server_id), metadata=metadata))
        try:
            return await until(call, C.WatchServersResponse, "server", predicate, timeout, gone)
        except RuntimeError:
            raise AssertionError(f"server {server_id}: watch ended") from None

    async def wait_volume(self, volume_id: str, predicate, timeout: float = 30):
        """As wait_for, on WatchVolumes (predicate(None): deleted)."""
        from nimbus.volume.v1 import volume_pb2 as V
        from nimbus.watch import absent_unless_read, until
        call = self.volumes.WatchVolumes(V.WatchVolumesRequest(id=volume_id), metadata=ADMIN)
        gone = absent_unless_read(lambda: self.volumes.GetVolume(V.GetVolumeRequest(id=volume_id),
                                                                 metadata=ADMIN))
        return await until(call, V.WatchVolumesResponse, "volume", predicate, timeout, gone)

    async def wait_snapshot(self, snapshot_id: str, predicate, timeout: float = 30):
        from nimbus.volume.v1 import volume_pb2 as V
        from nimbus.watch import absent_unless_read, until
        call = self.volumes.WatchSnapshots(V.WatchSnapshotsRequest(id=snapshot_id), metadata=ADMIN)
        gone = absent_unless_read(lambda: self.volumes.GetSnapshot(
            V.GetSnapshotRequest(id=snapshot_id), metadata=ADMIN))
        return await until(call, V.WatchSnapshotsResponse, "snapshot", predicate, timeout, gone)

    async def wait_settled(self, server_id: str, **kw) -> C.Server:
        """Until the server is ACTIVE or ERROR with no task."""
        return await self.wait_for(server_id, lambda s: s is not None and s.task_state == 0 and s.vm_state in (
            C.VM_STATE_ACTIVE, C.VM_STATE_ERROR), **kw)


async def expect(call, code: grpc.StatusCode, field: str = "") -> grpc.aio.AioRpcError:
    """Await a call that must fail with `code` naming `field` (see violation)."""
    import pytest
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    assert violation(err.value) == field, err.value.details()
    return err.value


def violation(err: grpc.aio.AioRpcError) -> str:
    """The BadRequest field of an error, or the ResourceInfo type of a
    NOT_FOUND; "" when it carries neither."""
    from google.rpc import error_details_pb2, status_pb2
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return bad.field_violations[0].field
                info = error_details_pb2.ResourceInfo()
                if detail.Unpack(info):
                    return info.resource_type
    return ""


__all__ = ["Stack", "ADMIN", "user", "make_qcow2", "expect", "violation", "C", "os"]
