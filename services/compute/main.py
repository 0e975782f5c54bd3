"""nimbus-compute (the public API): `python -m nimbus.services.compute`."""

from __future__ import annotations

import os

from nimbus import config, log, process
from nimbus.compute.v1 import compute_pb2, compute_pb2_grpc, ec2_pb2, ec2_pb2_grpc
from nimbus.compute.v1 import (instance_actions_pb2, instance_actions_pb2_grpc, quotas_pb2,
                               quotas_pb2_grpc)
from nimbus.imagestore import make_store
from nimbus.rpc import auth, tls
from nimbus.conductor.v1 import conductor_pb2_grpc
from nimbus.rpc.server import Server, channel
from nimbus.services.compute.addresses import Addresses
from nimbus.services.compute.ec2 import Ec2Servicer
from nimbus.services.compute.handlers import Catalog, ComputeServicer
from nimbus.services.compute.instance_actions import InstanceActionServicer
from nimbus.services.compute.quotas import QuotaServicer
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store

_log = log.get("nimbus.compute")


class ComputeProcess(process.ServiceProcess):
    async def start(self) -> "ComputeProcess":
        cfg = self.cfg
        if auth.mode(cfg) == "noauth":
            _log.warning("noauth mode: 'Bearer <user>:<project>' tokens are trusted as they are; "
                         "the user 'admin' is an admin. Development only.")
        self.store = await Store.for_config(cfg)
        self.closers.append(self.store.close)
        self.catalog = Catalog(self.store)
        self.instances = Informer(self.store, keys.INSTANCES, records_pb2.InstanceRecord)
        self.addresses = Addresses(self.store, self.catalog.networks)
        from nimbus.services.volume.handlers import VolumeServicer
        from nimbus.volume.v1 import volume_pb2, volume_pb2_grpc
        volumes = VolumeServicer(self.store, self.catalog, cfg.default_volume_type)
        informers = (self.catalog.flavors, self.catalog.images, self.catalog.networks,
                     self.instances, self.addresses.ports, *volumes.informers)
        for informer in informers:
            self.spawn(informer.run())
        self.server = Server("compute", cfg.listen or config.DEFAULT_API_ADDRESS,
                             auth.for_users(cfg), tls.server(cfg))
        self.conductor_channel = channel(cfg.conductor_address, tls.client(cfg))
        self.closers.append(self.conductor_channel.close)
        compute = ComputeServicer(self.store, self.catalog, self.instances,
                                  make_store(cfg.image_store, cfg.image_dir, cfg.ceph_conf,
                                             cfg.rbd_images_pool, cfg.rbd_user),
                                  os.path.join(cfg.state_dir, "staging"),
                                  conductor_pb2_grpc.ConductorServiceStub(self.conductor_channel),
                                  auth.service_metadata(cfg.service_token), self.addresses)
        compute.default_volume_type = cfg.default_volume_type
        self.server.add(compute_pb2_grpc.add_ComputeServiceServicer_to_server, compute,
                        compute_pb2.DESCRIPTOR.services_by_name["ComputeService"])
        self.server.add(quotas_pb2_grpc.add_QuotaServiceServicer_to_server,
                        QuotaServicer(self.store),
                        quotas_pb2.DESCRIPTOR.services_by_name["QuotaService"])
        self.server.add(instance_actions_pb2_grpc.add_InstanceActionServiceServicer_to_server,
                        InstanceActionServicer(self.store),
                        instance_actions_pb2.DESCRIPTOR.services_by_name["InstanceActionService"])
        from nimbus.compute.v1 import migrations_pb2, migrations_pb2_grpc
        from nimbus.services.compute.resize import MigrationServicer
        self.server.add(migrations_pb2_grpc.add_MigrationServiceServicer_to_server,
                        MigrationServicer(self.store),
                        migrations_pb2.DESCRIPTOR.services_by_name["MigrationService"])
        self.server.add(ec2_pb2_grpc.add_Ec2ServiceServicer_to_server,
                        Ec2Servicer(self.store, compute),
                        ec2_pb2.DESCRIPTOR.services_by_name["Ec2Service"])
        # Key pairs, security groups, server groups, aggregates/zones.
        from nimbus.compute.v1 import (aggregates_pb2, aggregates_pb2_grpc, keypairs_pb2,
                                       keypairs_pb2_grpc, security_groups_pb2,
                                       security_groups_pb2_grpc, server_groups_pb2,
                                       server_groups_pb2_grpc)
        from nimbus.services.compute.aggregates import AggregateServicer
        from nimbus.services.compute.keypairs import KeypairServicer
        from nimbus.services.compute.security_groups import SecurityGroupServicer
        from nimbus.services.compute.server_groups import ServerGroupServicer
        from nimbus.compute.v1 import networks_pb2, networks_pb2_grpc
        from nimbus.services.compute.networks import NetworkServicer
        for add_fn, servicer, descriptor in (
                (keypairs_pb2_grpc.add_KeypairServiceServicer_to_server, KeypairServicer,
                 keypairs_pb2.DESCRIPTOR.services_by_name["KeypairService"]),
                (security_groups_pb2_grpc.add_SecurityGroupServiceServicer_to_server,
                 SecurityGroupServicer,
                 security_groups_pb2.DESCRIPTOR.services_by_name["SecurityGroupService"]),
                (server_groups_pb2_grpc.add_ServerGroupServiceServicer_to_server,
                 ServerGroupServicer,
                 server_groups_pb2.DESCRIPTOR.services_by_name["ServerGroupService"]),
                (aggregates_pb2_grpc.add_AggregateServiceServicer_to_server, AggregateServicer,
                 aggregates_pb2.DESCRIPTOR.services_by_name["AggregateService"]),
                (networks_pb2_grpc.add_NetworkServiceServicer_to_server, NetworkServicer,
                 networks_pb2.DESCRIPTOR.services_by_name["NetworkService"])):
            self.server.add(add_fn, servicer(self.store), descriptor)
        from nimbus.compute.v1 import hypervisors_pb2, hypervisors_pb2_grpc
        from nimbus.services.compute.hypervisors import HypervisorServicer
        self.server.add(hypervisors_pb2_grpc.add_HypervisorServiceServicer_to_server,
                        HypervisorServicer(self.store, self.instances),
                        hypervisors_pb2.DESCRIPTOR.services_by_name["HypervisorService"])
        self.server.add(volume_pb2_grpc.add_VolumeServiceServicer_to_server, volumes,
                        volume_pb2.DESCRIPTOR.services_by_name["VolumeService"])
        await self.server.start()
        await self.serve_when_ready(*informers)
        return self


def main(argv: list[str] | None = None) -> None:
    def check(cfg: config.Config) -> str | None:
        if not cfg.service_token:
            return "needs a service token (NIMBUS_SERVICE_TOKEN): the conductor and agents use it"
        return None
    process.main(ComputeProcess, argv, "nimbus compute API", config.DEFAULT_API_ADDRESS, check)
