"""`make run`'s datastores: postgresql 15 and mariadb 10.11 (Debian's
packages, run by the guest agent), registered through DatastoreService
unless they exist. On the libvirt test driver the version's image is the
default `cirros` (no guest OS boots); on a real hypervisor register a
datastore guest image instead (README, "Databases")."""

from __future__ import annotations

import grpc

from nimbus.database.v1 import datastores_pb2 as S
from nimbus.database.v1 import datastores_pb2_grpc

DATASTORES = [("postgresql", "15", "postgresql"), ("mariadb", "10.11", "mariadb")]
MAX_VOLUME_GB = 100


async def seed_datastores(address: str, image: str, metadata) -> list[str]:
    async with grpc.aio.insecure_channel(address) as ch:
        api = datastores_pb2_grpc.DatastoreServiceStub(ch)
        have = {d.name for d in (await api.ListDatastores(S.ListDatastoresRequest(),
                                                          metadata=metadata)).datastores}
        for name, version, manager in DATASTORES:
            if name not in have:
                await api.CreateDatastore(S.CreateDatastoreRequest(datastore=S.Datastore(
                    name=name, default_version=version, versions=[S.DatastoreVersion(
                        name=version, manager=manager, image=image, active=True,
                        volume_support=True, max_accepted_volume_size=MAX_VOLUME_GB)])),
                    metadata=metadata)
    return [f"{name} {version}" for name, version, _ in DATASTORES]
