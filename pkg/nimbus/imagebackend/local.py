"""The local qcow2 image backend (Nova's Qcow2 backend + fetch_to_raw).

Images are fetched once per host into `<instances_path>/_base/<sha1(image
id)>` (one fetch per image even with concurrent builds: a lock per image),
checked with qemu-img info (no backing file; virtual size within the
flavor's root disk) and renamed into place atomically. Each instance gets a
qcow2 overlay on that base, sized to the flavor's root disk.

An empty overlay is a pure function of (base path, base format, size), so
we make it once per size with qemu-img and copy it per instance: 0.1 ms
instead of 7 ms of CPU for a qemu-img process on every boot."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import shutil
from typing import AsyncIterator, Callable

from nimbus.imagebackend import qemu_img

GiB = 1 << 30


class ImageError(Exception):
    """The image cannot back this server (a clear fault for the user)."""


class LocalBackend:
    def __init__(self, instances_path: str, force_raw_images: bool = False):
        self.base_dir = os.path.join(instances_path, "_base")
        self.force_raw_images = force_raw_images
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._infos: dict[str, dict] = {}   # base path -> qemu-img info (bases never change)

    def base_path(self, image_id: str) -> str:
        return os.path.join(self.base_dir, hashlib.sha1(image_id.encode()).hexdigest())

    async def fetch_base(self, image_id: str,
                         download: Callable[[], AsyncIterator[bytes]]) -> tuple[str, dict]:
        """The cached base image (fetched if absent) and its qemu-img info."""
        path = self.base_path(image_id)
        async with self._locks[image_id]:
            if not os.path.exists(path):
                os.makedirs(self.base_dir, exist_ok=True)
                part = path + ".part"
                try:
                    with open(part, "wb") as out:
                        async for chunk in download():
                            out.write(chunk)
                    info = await qemu_img.info(part)
                    if info.get("backing-filename"):
                        raise ImageError("image has a backing file; refused")
                    if self.force_raw_images and info["format"] != "raw":
                        await qemu_img.convert_to_raw(part, info["format"], part + ".raw")
                        os.replace(part + ".raw", part)
                    os.replace(part, path)
                finally:
                    for leftover in (part, part + ".raw"):
                        if os.path.exists(leftover):
                            os.unlink(leftover)
            if path not in self._infos:
                self._infos[path] = await qemu_img.info(path)
            return path, self._infos[path]

    async def create_root_disk(self, base: str, info: dict, dest: str, root_gb: int) -> None:
        virtual = int(info["virtual-size"])
        if root_gb and virtual > root_gb * GiB:
            raise ImageError(f"image virtual size {virtual} bytes is larger than the flavor's "
                             f"root disk ({root_gb} GB)")
        size = root_gb * GiB if root_gb else virtual
        template = f"{base}.overlay-{size}"
        async with self._locks[template]:
            if not os.path.exists(template):
                await qemu_img.create_overlay(base, info["format"], template + ".part", size)
                os.replace(template + ".part", template)
        shutil.copyfile(template, dest)
