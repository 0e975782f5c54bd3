"""The health-only port Kubernetes probes (NIMBUS_HEALTH_ADDRESS): plaintext
grpc.health.v1 and nothing else. The agent's is NOT_SERVING until it is
connected to the conductor and again when that connection is lost, while
`liveness` stays SERVING; an API process answers there what its own port
answers. Real processes (`python -m`), real etcd, real grpcurl."""

import asyncio
import json
import os
import secrets
import sys
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nimbus import config
from nimbus.etcd import free_port
from nimbus.rpc.server import channel
from nimbus.services.conductor.main import ConductorProcess
from stack import ServiceSubprocess

GRPCURL = os.path.join(os.path.dirname(sys.executable), "grpcurl")
H = health_pb2.HealthCheckResponse


async def grpcurl_health(address: str, service: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", "-d", json.dumps({"service": service}), address,
        "grpc.health.v1.Health/Check", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode()


async def until_status(address: str, wanted: int, service: str = "", timeout: float = 30) -> None:
    """Follow Health/Watch (no polling) until `service` reports `wanted`."""
    async with channel(address) as ch:
        async with asyncio.timeout(timeout):
            while True:   # the port may not listen yet: Watch again
                try:
                    async for resp in health_pb2_grpc.HealthStub(ch).Watch(
                            health_pb2.HealthCheckRequest(service=service)):
                        if resp.status == wanted:
                            return
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)


def settings(etcd, tmp_path, **kw) -> config.Config:
    return config.Config(
        etcd_endpoint=etcd.endpoint, etcd_prefix=f"/t-{uuid.uuid4().hex[:8]}/",
        api_address=f"127.0.0.1:{free_port()}", conductor_address=f"127.0.0.1:{free_port()}",
        scheduler_address=f"127.0.0.1:{free_port()}", service_token=secrets.token_hex(16),
        noauth=True, state_dir=str(tmp_path), host="sim", simulate=1,
        health_address=f"127.0.0.1:{free_port()}", **kw)


async def test_agent_health_follows_its_conductor_connection(etcd, tmp_path):
    cfg = settings(etcd, tmp_path)
    agent = ServiceSubprocess("nimbus.services.agent", cfg, str(tmp_path / "agent.log"))
    await agent.start(health=False)
    conductor = None
    try:
        # No conductor yet: alive, not ready.
        await until_status(cfg.health_address, H.SERVING, "liveness")
        rc, out = await grpcurl_health(cfg.health_address, "")
        assert rc == 0 and json.loads(out)["status"] == "NOT_SERVING", out

        conductor_cfg = config.Config(**vars(cfg))
        conductor_cfg.listen = cfg.conductor_address
        conductor = await ConductorProcess(conductor_cfg).start()
        await until_status(cfg.health_address, H.SERVING)

        await conductor.stop()
        conductor = None
        await until_status(cfg.health_address, H.NOT_SERVING)
        rc, out = await grpcurl_health(cfg.health_address, "liveness")
        assert rc == 0 and json.loads(out)["status"] == "SERVING", out
    finally:
        if conductor is not None:
            await conductor.stop()
        await agent.stop()
    assert agent.proc.returncode == 0, (tmp_path / "agent.log").read_text()[-2000:]


@pytest.mark.parametrize("tls_on", [False, True], ids=["plaintext", "tls"])
async def test_api_health_port_answers_the_api_health_and_nothing_else(etcd, tmp_path, tls_on):
    """With TLS on the API's port (production), the health port stays
    plaintext: the kubelet's probes cannot do TLS."""
    cfg = settings(etcd, tmp_path)
    cfg.listen = cfg.api_address
    if tls_on:
        from credentials import CA
        ca = CA()
        cfg.tls_cert, cfg.tls_key = ca.issue(str(tmp_path), "compute")
        cfg.tls_ca = ca.write(str(tmp_path / "ca.crt"))
    api = await ServiceSubprocess("nimbus.services.compute", cfg,
                                  str(tmp_path / "compute.log")).start()
    try:
        await until_status(cfg.health_address, H.SERVING)
        if tls_on:   # the API's own port refuses plaintext
            rc, out = await grpcurl_health(cfg.api_address, "")
            assert rc != 0, out
        for service in ("", "liveness", "nimbus.compute.v1.ComputeService"):
            rc, out = await grpcurl_health(cfg.health_address, service)
            assert rc == 0 and json.loads(out)["status"] == "SERVING", (service, out)
        # Only health (and its reflection): no API on this port.
        proc = await asyncio.create_subprocess_exec(
            GRPCURL, "-plaintext", cfg.health_address, "list",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out
        assert out.decode().split() == ["grpc.health.v1.Health",
                                        "grpc.reflection.v1alpha.ServerReflection"], out
        async with channel(cfg.health_address) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await api.stop()
