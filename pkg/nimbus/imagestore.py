"""Where the image service keeps image bytes: files in a directory
(development; with several API replicas, a ReadWriteMany volume they all
mount) or the Ceph RBD images pool, where raw images get the protected
snapshot that lets hosts clone them (Glance's RBD store; the production
overlay's choice, deploy/README.md). Uploads are staged in a local file first: the API checks the bytes
(qemu-img info) before anything is stored."""

from __future__ import annotations

import os
from typing import AsyncIterator, Protocol

from nimbus import errors

CHUNK = 1 << 20


async def file_chunks(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class ImageStore(Protocol):
    async def write(self, image_id: str, chunks: AsyncIterator[bytes], disk_format: str) -> str:
        """Store the bytes; returns the location to keep in the record."""

    def read(self, location: str) -> AsyncIterator[bytes]:
        """The bytes, in chunks; NotFound when they are gone (another API
        replica deleted the image and this one's informer has not seen it yet)."""

    async def delete(self, location: str) -> None:
        """Remove the bytes. Idempotent."""


class FileImageStore:
    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    async def write(self, image_id: str, chunks: AsyncIterator[bytes], disk_format: str) -> str:
        path = os.path.join(self.directory, image_id)
        with open(path + ".part", "wb") as out:
            async for chunk in chunks:
                out.write(chunk)
        os.replace(path + ".part", path)
        return image_id

    async def read(self, location: str) -> AsyncIterator[bytes]:
        try:
            f = open(os.path.join(self.directory, location), "rb")
        except FileNotFoundError:
            raise errors.NotFound("image", location) from None
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    async def delete(self, location: str) -> None:
        try:
            os.unlink(os.path.join(self.directory, location))
        except FileNotFoundError:
            pass


def make_store(kind: str, directory: str, ceph_conf: str = "", pool: str = "images",
               ceph_user: str = "") -> ImageStore:
    if kind == "file":
        return FileImageStore(directory)
    if kind == "rbd":
        from nimbus.imagebackend.rbd import RbdImageStore   # needs Ceph's python modules
        if not ceph_conf:
            raise SystemExit("image_store rbd needs --ceph-conf")
        return RbdImageStore(ceph_conf, pool=pool, user=ceph_user)
    raise SystemExit(f"image_store must be file or rbd, not {kind!r}")
