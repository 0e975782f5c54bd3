"""ComputeService as the task manager sees it: a gRPC client with the
service token, like any other client (no compute code is imported)."""

from __future__ import annotations

from nimbus.compute.v1 import (aggregates_pb2_grpc, compute_pb2_grpc, networks_pb2_grpc,
                               security_groups_pb2_grpc, server_groups_pb2_grpc)
from nimbus.rpc import auth
from nimbus.rpc.server import channel


class ComputeClient:
    def __init__(self, address: str, service_token: str, tls_config=None):
        self.channel = channel(address, tls_config)
        self.metadata = auth.service_metadata(service_token)
        self.compute = compute_pb2_grpc.ComputeServiceStub(self.channel)
        self.security_groups = security_groups_pb2_grpc.SecurityGroupServiceStub(self.channel)
        self.server_groups = server_groups_pb2_grpc.ServerGroupServiceStub(self.channel)
        self.aggregates = aggregates_pb2_grpc.AggregateServiceStub(self.channel)
        self.networks = networks_pb2_grpc.NetworkServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
