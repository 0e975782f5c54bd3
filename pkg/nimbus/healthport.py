"""A health-only gRPC port: grpc.health.v1 (and its reflection, for
grpcurl) and nothing else, always plaintext, for Kubernetes' native gRPC
probes (the kubelet cannot speak TLS to a probe before Kubernetes 1.37's
`mode: TLS`, and never verifies a certificate). It answers from the same HealthServicer as the process's own
port, plus one extra name:

- `""` (and each service's name): ready, as the process decides (informers
  synced and etcd reachable; for the agent, connected to the conductor) —
  the readiness probe;
- `liveness`: SERVING while the process's event loop answers at all — the
  startup and liveness probes, so an etcd or conductor outage makes pods
  unready instead of restarting every one of them.

Nothing here is secret (a status per name), so it needs no authentication;
NetworkPolicies still keep it to the node (the kubelet)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from nimbus import log

LIVENESS = "liveness"
_log = log.get("nimbus.health")


def not_serving() -> HealthServicer:
    """A servicer whose overall status starts NOT_SERVING (grpc's starts SERVING)."""
    servicer = HealthServicer()
    servicer._server_status[""] = health_pb2.HealthCheckResponse.NOT_SERVING
    return servicer


class HealthPort:
    def __init__(self, address: str, servicer: HealthServicer):
        self.servicer = servicer
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0),
                                                ("grpc.max_receive_message_length", 1 << 10)])
        health_pb2_grpc.add_HealthServicer_to_server(servicer, self._server)
        # Reflection of health alone, so grpcurl works here as on every port.
        reflection.enable_server_reflection(
            (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), self._server)
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"health port: cannot listen on {address}")
        self.address = f"{address.rsplit(':', 1)[0]}:{self.port}"

    async def start(self) -> "HealthPort":
        await self.servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self._server.start()
        _log.info("health port", address=self.address)
        return self

    async def stop(self) -> None:
        await self._server.stop(0)
