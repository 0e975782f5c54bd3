"""Image backends: where an instance's disks live (Nova's imagebackend).

A backend turns an image into an instance's root disk and a built config
drive ISO into an attachable disk, removes an instance's disks, and reports
its capacity. The driver only sees `DiskSource`s, which say how libvirt
reaches a disk (a file, or an RBD image over the network)."""

from __future__ import annotations

import dataclasses
from typing import AsyncIterator, Callable, Protocol

Download = Callable[[], AsyncIterator[bytes]]


@dataclasses.dataclass(frozen=True)
class DiskSource:
    # 'file' (path) or 'network' (protocol 'rbd', name '<pool>/<image>').
    kind: str
    # qcow2 or raw: the format libvirt's driver element declares.
    format: str
    path: str = ""
    name: str = ""
    monitors: tuple[tuple[str, int], ...] = ()   # (host, port) of the Ceph monitors


class ImageError(Exception):
    """The image cannot back this server (a clear fault for the user)."""


class Backend(Protocol):
    async def create_root_disk(self, instance_id: str, instance_dir: str, image_id: str,
                               disk_format: str, download: Download, root_gb: int) -> DiskSource:
        """The instance's root disk from the image (cached or cloned),
        grown to root_gb (0: the image's own size). Raises ImageError for an
        image with a backing file or larger than root_gb."""

    async def moved_disks(self, instance_id: str, instance_dir: str, image_id: str,
                          download: Download, root_gb: int,
                          config_drive: bool) -> tuple[DiskSource, DiskSource | None]:
        """A moving server's root disk (grown to root_gb; 0: as it is) and
        config drive on its destination, after its files have arrived in
        instance_dir (local disks travel; RBD disks stay in Ceph)."""

    async def keep_revert_point(self, instance_id: str) -> None:
        """Before a move changes the disks where they are (RBD: grown in
        place), keep what a revert returns to. Idempotent. Local disks need
        nothing: the source keeps its files in `<uuid>_resize`."""

    async def revert_to_point(self, instance_id: str) -> None:
        """A revert: the disks as they were at keep_revert_point (size
        included), and the point dropped. Idempotent; nothing kept: no-op."""

    async def drop_revert_point(self, instance_id: str) -> None:
        """A confirm: the point is no longer needed. Idempotent."""

    async def import_config_drive(self, instance_id: str, iso_path: str) -> DiskSource:
        """Make the built ISO attachable (the local backend uses it as is)."""

    async def remove_disks(self, instance_id: str, instance_dir: str) -> None:
        """Remove every disk of the instance. Idempotent."""

    async def capacity_gb(self) -> tuple[int, int]:
        """(total GB, free GB) of the storage this backend puts disks on."""
