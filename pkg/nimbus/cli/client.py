"""One gRPC channel to the API and the stubs the commands call through it.

The token rides in `authorization: Bearer <token>` on every call and is
never printed. Plaintext unless a CA certificate is configured (then TLS,
verified against that CA)."""

from __future__ import annotations

import grpc

from nimbus.cli.clouds import Cloud, ConfigError
from nimbus.compute.v1 import compute_pb2_grpc, keypairs_pb2_grpc, networks_pb2_grpc, quotas_pb2_grpc
from nimbus.database.v1 import backups_pb2_grpc, database_pb2_grpc

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 << 20)]


class Client:
    def __init__(self, cloud: Cloud, timeout: float):
        if not cloud.token:
            raise ConfigError("no token: give --token, NIMBUS_TOKEN or a cloud's `token` "
                              "(development: <user>:<project>)")
        if cloud.cacert:
            try:
                with open(cloud.cacert, "rb") as f:
                    credentials = grpc.ssl_channel_credentials(f.read())
            except OSError as exc:
                raise ConfigError(f"cannot read the CA certificate {cloud.cacert}: {exc.strerror}")
            self.channel = grpc.secure_channel(cloud.api, credentials, CHANNEL_OPTIONS)
            self.database_channel = grpc.secure_channel(cloud.database_api, credentials,
                                                        CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(cloud.api, CHANNEL_OPTIONS)
            self.database_channel = grpc.insecure_channel(cloud.database_api, CHANNEL_OPTIONS)
        self.api = cloud.api
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {cloud.token}"),)
        self.compute = compute_pb2_grpc.ComputeServiceStub(self.channel)
        self.keypairs = keypairs_pb2_grpc.KeypairServiceStub(self.channel)
        self.networks = networks_pb2_grpc.NetworkServiceStub(self.channel)
        self.quotas = quotas_pb2_grpc.QuotaServiceStub(self.channel)
        self.databases = database_pb2_grpc.DatabaseServiceStub(self.database_channel)
        self.backups = backups_pb2_grpc.BackupServiceStub(self.database_channel)

    def call(self, method, request):
        """A unary (or client-streaming) call with the token and the deadline."""
        return method(request, metadata=self.metadata, timeout=self.timeout)

    def list_all(self, method, request, answer: str) -> list:
        """Every item of a List RPC: follows next_page_token where the
        answer has one, so a list is never cut at the server's page size."""
        items = []
        while True:
            page = self.call(method, request)
            items += getattr(page, answer)
            token = getattr(page, "next_page_token", "")
            if not token:
                return items
            request.page_token = token

    def stream(self, method, request, timeout: float | None):
        """A server-streaming call; `timeout` bounds the whole stream."""
        return method(request, metadata=self.metadata, timeout=timeout)

    def close(self) -> None:
        self.channel.close()
        self.database_channel.close()
