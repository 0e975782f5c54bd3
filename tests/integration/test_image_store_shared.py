"""The file image store shared by several compute API replicas, as on a
ReadWriteMany volume (deploy/README.md, "Image store"): real API processes,
real etcd, a directory every replica's images path points at."""

import os

import grpc

from imagestores import Replicas, round_trip, upload
from stack import ADMIN, C, expect


async def test_replicas_share_the_file_store(etcd, tmp_path, qcow2_image):
    shared = tmp_path / "volume"
    shared.mkdir()
    replicas = Replicas(etcd.endpoint, str(tmp_path), shared_images=str(shared), image_store="file")
    image_id = await round_trip(replicas, qcow2_image, "qcow2")
    assert replicas.count == 4
    assert image_id not in os.listdir(shared), "the delete left the bytes behind"


async def test_without_a_shared_store_the_other_replica_answers_not_found(etcd, tmp_path,
                                                                       qcow2_image):
    """The emptyDir layout this replaces: the second replica has the record
    but not the bytes, and says NOT_FOUND instead of failing with INTERNAL."""
    replicas = Replicas(etcd.endpoint, str(tmp_path), image_store="file")
    async with replicas.replica() as a, replicas.replica() as b:
        image = await upload(a, qcow2_image, "qcow2")
        await expect(b.DownloadImage(C.DownloadImageRequest(id=image.id), metadata=ADMIN).read(),
                     grpc.StatusCode.NOT_FOUND, "image")
