"""The local qcow2 image backend (Nova's Qcow2 backend + fetch_to_raw).

Images are fetched once per host into `<instances_path>/_base/<sha1(image
id)>` (one fetch per image even with concurrent builds: a lock per image),
checked with qemu-img info (no backing file; virtual size within the
flavor's root disk), converted to raw when force_raw_images, and renamed
into place atomically. Each instance gets a qcow2 overlay on that base,
sized to the flavor's root disk, in its instance directory.

An empty overlay is a pure function of (base path, base format, size), so
we make it once per size with qemu-img and copy it per instance: 0.1 ms
instead of 7 ms of CPU for a qemu-img process on every boot."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import shutil

from nimbus.imagebackend import DiskSource, Download, ImageError, qemu_img

GiB = 1 << 30
ROOT_DISK = "disk"
CONFIG_DRIVE = "disk.config"


async def fetch_to_raw(path: str, download: Download, force_raw: bool) -> dict:
    """Nova's fetch_to_raw: download to `.part`, inspect, refuse backing
    files, optionally convert to raw, rename into place. Returns qemu-img info."""
    part = path + ".part"
    try:
        with open(part, "wb") as out:
            async for chunk in download():
                out.write(chunk)
        info = await qemu_img.info(part)
        if info.get("backing-filename"):
            raise ImageError("image has a backing file; refused")
        if force_raw and info["format"] != "raw":
            await qemu_img.convert_to_raw(part, info["format"], part + ".raw")
            os.replace(part + ".raw", part)
            info = await qemu_img.info(part)
        os.replace(part, path)
        return info
    finally:
        for leftover in (part, part + ".raw"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def check_fits(info: dict, root_gb: int) -> int:
    """The root disk size in bytes; ImageError when the image is bigger."""
    virtual = int(info["virtual-size"])
    if root_gb and virtual > root_gb * GiB:
        raise ImageError(f"image virtual size {virtual} bytes is larger than the flavor's "
                         f"root disk ({root_gb} GB)")
    return root_gb * GiB if root_gb else virtual


class ImageCache:
    """The per-host `_base` directory: one download per image."""

    def __init__(self, base_dir: str, force_raw: bool = False):
        self.base_dir = base_dir
        self.force_raw = force_raw
        self.locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._infos: dict[str, dict] = {}   # path -> qemu-img info (bases never change)

    def path(self, image_id: str) -> str:
        return os.path.join(self.base_dir, hashlib.sha1(image_id.encode()).hexdigest())

    async def fetch(self, image_id: str, download: Download, inspect: bool = True) -> tuple[str, dict]:
        """The cached file and (for disk images) its qemu-img info."""
        path = self.path(image_id)
        async with self.locks[image_id]:
            if path not in self._infos:
                os.makedirs(self.base_dir, exist_ok=True)
                if not os.path.exists(path):
                    if inspect:
                        self._infos[path] = await fetch_to_raw(path, download, self.force_raw)
                    else:   # a kernel or ramdisk: bytes, not a disk image
                        with open(path + ".part", "wb") as out:
                            async for chunk in download():
                                out.write(chunk)
                        os.replace(path + ".part", path)
                        self._infos[path] = {}
                else:
                    self._infos[path] = await qemu_img.info(path) if inspect else {}
            return path, self._infos[path]


def backing_name(base: str) -> str:
    """How an overlay names its base: relative (`../_base/<file>`), which
    resolves to this host's cache from any instance dir, `_resize` and
    `_base` itself alike, so a disk moved to another host already points at
    that host's cache (no qemu-img rebase there)."""
    return os.path.join("..", os.path.basename(os.path.dirname(base)), os.path.basename(base))


class LocalBackend:
    def __init__(self, instances_path: str, force_raw_images: bool = False):
        self.instances_path = instances_path
        self.cache = ImageCache(os.path.join(instances_path, "_base"), force_raw_images)

    async def create_root_disk(self, instance_id: str, instance_dir: str, image_id: str,
                               disk_format: str, download: Download, root_gb: int) -> DiskSource:
        base, info = await self.cache.fetch(image_id, download)
        size = check_fits(info, root_gb)
        template = f"{base}.overlay-{size}"
        async with self.cache.locks[template]:
            if not os.path.exists(template):
                await qemu_img.create_overlay(backing_name(base), info["format"],
                                              template + ".part", size)
                os.replace(template + ".part", template)
        dest = os.path.join(instance_dir, ROOT_DISK)
        shutil.copyfile(template, dest)
        return DiskSource(kind="file", format="qcow2", path=dest)

    async def moved_disks(self, instance_id: str, instance_dir: str, image_id: str,
                          download: Download, root_gb: int,
                          config_drive: bool) -> tuple[DiskSource, DiskSource | None]:
        """A moving server's disks on its destination, from the files sent
        into instance_dir: the root's backing file is this host's cache of
        its image (a relative name already says so; an absolute one, the
        source's path, is rebased), grown to root_gb (0: as it is)."""
        base, info = await self.cache.fetch(image_id, download)
        root = os.path.join(instance_dir, ROOT_DISK)
        want = (backing_name(base), info["format"])
        if qemu_img.backing_of(root) != want:   # made before backing names were relative
            await qemu_img.run("rebase", "-u", "-b", want[0], "-F", want[1], root)
        if root_gb and not qemu_img.grow_in_place(root, root_gb * GiB, int(info["virtual-size"])):
            await qemu_img.run("resize", "-q", root, f"{root_gb}G")
        config = os.path.join(instance_dir, CONFIG_DRIVE)
        return (DiskSource(kind="file", format="qcow2", path=root),
                DiskSource(kind="file", format="raw", path=config) if config_drive else None)

    # A move copies local disks; the source's `<uuid>_resize` is the revert point.
    async def keep_revert_point(self, instance_id: str) -> None:
        pass

    async def revert_to_point(self, instance_id: str) -> None:
        pass

    async def drop_revert_point(self, instance_id: str) -> None:
        pass

    async def import_config_drive(self, instance_id: str, iso_path: str) -> DiskSource:
        return DiskSource(kind="file", format="raw", path=iso_path)

    async def remove_disks(self, instance_id: str, instance_dir: str) -> None:
        for name in (ROOT_DISK, CONFIG_DRIVE):
            try:
                os.unlink(os.path.join(instance_dir, name))
            except FileNotFoundError:
                pass

    async def capacity_gb(self) -> tuple[int, int]:
        os.makedirs(self.instances_path, exist_ok=True)
        st = os.statvfs(self.instances_path)
        return st.f_blocks * st.f_frsize // GiB, st.f_bavail * st.f_frsize // GiB
