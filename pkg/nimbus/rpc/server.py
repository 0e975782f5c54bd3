"""Building and running a nimbus gRPC server: grpc.aio, the interceptor,
server reflection (grpcurl needs no .proto files) and the standard health
service (Kubernetes probes; every service answers SERVING once ready)."""

from __future__ import annotations

import asyncio
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from nimbus import log
from nimbus.rpc import auth, tls
from nimbus.rpc.interceptor import ServerInterceptor

_log = log.get("nimbus.rpc")

# Loopback by default: production binds wider through --listen.
DEFAULT_HOST = "127.0.0.1"
# grpc.reflection.v1 has v1alpha's messages under another name: one servicer
# answers both (grpcio-reflection ships only v1alpha).
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
# The largest message a server or client takes (grpc answers a larger one
# RESOURCE_EXHAUSTED naming both sizes before any handler runs).
MAX_MESSAGE = 16 << 20


class Server:
    """One grpc.aio server exposing some services plus health and reflection."""

    def __init__(self, name: str, address: str, authenticator: auth.Authenticator,
                 tls_config: tls.ServerTLS | None = None):
        self.name = name
        self._server = grpc.aio.server(
            interceptors=[ServerInterceptor(
                authenticator, name,
                certificate_agents=tls_config is not None and tls_config.client_auth)],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", MAX_MESSAGE),
                     # Agents keep their streams alive with pings (see channel()).
                     ("grpc.keepalive_permit_without_calls", 1),
                     ("grpc.http2.min_recv_ping_interval_without_data_ms", 10000),
                     ("grpc.http2.max_ping_strikes", 0)])
        self.tls_files = None
        if tls_config is None:
            self.port = self._server.add_insecure_port(address)
        else:
            creds, self.tls_files = tls.server_credentials(tls_config)
            self.port = self._server.add_secure_port(address, creds)
        if self.port == 0:
            raise OSError(f"{name}: cannot listen on {address}")
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        self.health = HealthServicer()
        # grpc's servicer starts "" at SERVING: nothing here is ready yet.
        self.health._server_status[""] = health_pb2.HealthCheckResponse.NOT_SERVING
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._service_names: list[str] = []
        self._ready = False
        self._store_ok = True

    def add(self, add_fn, servicer, descriptor) -> None:
        """Register a servicer: add_fn is the generated add_XServicer_to_server."""
        add_fn(servicer, self._server)
        self._service_names.append(descriptor.full_name)

    async def start(self) -> None:
        servicer = reflection_aio.ReflectionServicer(
            [*self._service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME, REFLECTION_V1])
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, self._server)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            REFLECTION_V1, {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}),))
        await self._server.start()
        _log.info("listening", service=self.name, address=self.address)

    async def set_serving(self, serving: bool = True) -> None:
        """The process is ready (or no longer is)."""
        self._ready = serving
        await self._publish(serving and self._store_ok)

    async def _publish(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def follow_store(self, store, interval: float = 1.0) -> None:
        """Run forever: NOT_SERVING while `store` cannot reach etcd, back to
        SERVING (if the process was ready) when it answers again."""
        async def changed(ok: bool) -> None:
            self._store_ok = ok
            _log.warning("etcd reachable again" if ok else "etcd unreachable: NOT_SERVING",
                         service=self.name)
            await self._publish(ok and self._ready)
        await store.probe(interval, changed)

    async def stop(self, grace: float = 1.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)


async def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def channel(address: str, tls_config: tls.ClientTLS | None = None) -> grpc.aio.Channel:
    """The one way nimbus code dials a nimbus service: TLS verified against
    the CA (and a client certificate for mTLS) when configured."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE),
               ("grpc.keepalive_time_ms", 20000),
               ("grpc.keepalive_permit_without_calls", 1)]
    if tls_config is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.channel_credentials(tls_config), options=options)
