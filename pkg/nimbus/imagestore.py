"""Where the image service keeps image bytes: files in a directory
(development, a PVC in Kubernetes) or the Ceph RBD images pool, where raw
images get the protected snapshot that lets hosts clone them (Glance's RBD
store). Uploads are staged in a local file first: the API checks the bytes
(qemu-img info) before anything is stored."""

from __future__ import annotations

import os
from typing import AsyncIterator, Protocol

CHUNK = 1 << 20


async def file_chunks(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class ImageStore(Protocol):
    async def write(self, image_id: str, chunks: AsyncIterator[bytes], disk_format: str) -> str:
        """Store the bytes; returns the location to keep in the record."""

    def read(self, location: str) -> AsyncIterator[bytes]:
        """The bytes, in chunks."""

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

    def read(self, location: str) -> AsyncIterator[bytes]:
        return file_chunks(os.path.join(self.directory, location))

    async def delete(self, location: str) -> None:
        try:
            os.unlink(os.path.join(self.directory, location))
        except FileNotFoundError:
            pass


def make_store(kind: str, directory: str, ceph_conf: str = "", pool: str = "images") -> ImageStore:
    if kind == "file":
        return FileImageStore(directory)
    if kind == "rbd":
        from nimbus.imagebackend.rbd import RbdImageStore   # needs Ceph's python modules
        if not ceph_conf:
            raise SystemExit("image_store rbd needs --ceph-conf")
        return RbdImageStore(ceph_conf, pool=pool)
    raise SystemExit(f"image_store must be file or rbd, not {kind!r}")
