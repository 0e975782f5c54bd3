"""Several compute API processes over one image store, as the replicas of
the `compute` Deployment run: each its own state directory (the pod's
emptyDir), one etcd prefix, one store (a shared directory standing in for a
ReadWriteMany volume, or the Ceph images pool). An image uploaded through
one replica downloads through another, survives every replica being
replaced, and a delete through any replica removes it for all."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import uuid

import grpc

from nimbus import config
from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.etcd import free_port
from nimbus.rpc.server import channel
from nimbus.services.compute.main import ComputeProcess
from stack import ADMIN, C, expect


class Replicas:
    def __init__(self, etcd_endpoint: str, root: str, shared_images: str | None = None, **store):
        """`shared_images`: one directory every replica's state_dir/images
        points at (how the PVC is mounted: deploy/overlays/*/images.yaml);
        `store`: Config fields of the image store (image_store, ceph_conf, ...)."""
        self.root = root
        self.shared_images = shared_images
        self.base = config.Config(
            etcd_endpoint=etcd_endpoint, etcd_prefix=f"/t-{uuid.uuid4().hex[:8]}/",
            conductor_address=f"127.0.0.1:{free_port()}", service_token=secrets.token_hex(16),
            noauth=True, **store)
        self.count = 0

    @contextlib.asynccontextmanager
    async def replica(self):
        """One more API process (a new pod: a fresh state directory)."""
        self.count += 1
        cfg = config.Config(**vars(self.base))
        cfg.state_dir = os.path.join(self.root, f"pod-{self.count}")
        cfg.listen = f"127.0.0.1:{free_port()}"
        if self.shared_images is not None:
            os.makedirs(cfg.state_dir)
            os.symlink(self.shared_images, cfg.image_dir)
        proc = await ComputeProcess(cfg).start()
        try:
            async with channel(cfg.listen) as ch:
                yield compute_pb2_grpc.ComputeServiceStub(ch)
        finally:
            await proc.stop()


async def upload(api, path: str, disk_format: str) -> C.Image:
    async def messages():
        yield C.CreateImageRequest(image=C.Image(name=os.path.basename(path),
                                                 disk_format=disk_format, visibility="public"))
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                yield C.CreateImageRequest(chunk=chunk)
    return (await api.CreateImage(messages(), metadata=ADMIN)).image


async def download_sha256(api, image_id: str) -> str:
    digest = hashlib.sha256()
    async for resp in api.DownloadImage(C.DownloadImageRequest(id=image_id), metadata=ADMIN):
        digest.update(resp.chunk)
    return digest.hexdigest()


async def round_trip(replicas: Replicas, path: str, disk_format: str) -> str:
    """The scenario; returns the image id (deleted by then), so the caller
    can check that its bytes left the store."""
    with open(path, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    async with replicas.replica() as a, replicas.replica() as b:
        image = await upload(a, path, disk_format)
        assert image.checksum == want
        assert await download_sha256(b, image.id) == want
    # Every replica replaced (a rollout, a node lost): the bytes are still there.
    async with replicas.replica() as c, replicas.replica() as d:
        assert await download_sha256(c, image.id) == want
        await c.DeleteImage(C.DeleteImageRequest(ref=image.id), metadata=ADMIN)
        await expect(d.DownloadImage(C.DownloadImageRequest(id=image.id), metadata=ADMIN).read(),
                     grpc.StatusCode.NOT_FOUND, "image")
    return image.id
