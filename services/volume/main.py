"""nimbus-volume (cinder-volume): `python -m nimbus.services.volume`.

The volume manager of one backend (`--volume-backend file|rbd`), elected
per backend (leaders/volume-manager-<backend>): standbys wait while the
leader works. It serves only health (and reflection) on `--listen`; the
VolumeService API is served by the API process. It holds the backend's
credentials (Ceph's, for rbd); the API holds none."""

from __future__ import annotations

import os

from nimbus import config, log, process
from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.rpc import auth, tls
from nimbus.rpc.server import Server, channel
from nimbus.services.volume.manager import VolumeManager, ensure_volume_type, image_source
from nimbus.store.election import LeaderElection
from nimbus.store.store import Store
from nimbus import volumebackend

_log = log.get("nimbus.volume")


class VolumeManagerProcess(process.ServiceProcess):
    async def start(self) -> "VolumeManagerProcess":
        cfg = self.cfg
        backend_name = cfg.volume_backend
        backend = volumebackend.make(backend_name, root=os.path.join(cfg.state_dir, "volumes"),
                                     ceph_conf=cfg.ceph_conf, volumes_pool=cfg.rbd_volumes_pool,
                                     images_pool=cfg.rbd_images_pool, rbd_user=cfg.rbd_user)
        if hasattr(backend, "close"):
            async def close_backend():
                backend.close()   # waits for librados calls in flight
            self.closers.append(close_backend)
        self.store = await Store.for_config(cfg)
        self.closers.append(self.store.close)
        self.api_channel = channel(cfg.api_address, tls.client(cfg))
        self.closers.append(self.api_channel.close)
        images = image_source(compute_pb2_grpc.ComputeServiceStub(self.api_channel),
                              auth.service_metadata(cfg.service_token))
        self.manager = VolumeManager(self.store, backend, backend_name, images)
        for informer in (self.manager.volumes, self.manager.snapshots, self.manager.instances):
            self.spawn(informer.run())
        await ensure_volume_type(self.store, cfg.default_volume_type, backend_name)
        self.server = Server("volume", cfg.listen or config.DEFAULT_VOLUME_ADDRESS,
                             auth.for_services(cfg), tls.server(cfg))
        await self.server.start()
        self.election = LeaderElection(self.store, f"volume-manager-{backend_name}")
        self.spawn(self.election.run(self.manager.lead))
        await self.serve_when_ready(self.manager.volumes, self.manager.snapshots)
        _log.info("volume manager started", backend=backend_name)
        return self


def main(argv: list[str] | None = None) -> None:
    process.main(VolumeManagerProcess, argv, "nimbus volume manager (cinder-volume)",
                 config.DEFAULT_VOLUME_ADDRESS, process.needs_service_token)
