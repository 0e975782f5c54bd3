"""Volume backends (Cinder's volume drivers): where a volume's blocks live.

A backend is used by the volume manager only (it holds any credentials).
Every operation is idempotent, so a manager that crashed half-way simply
runs it again: a create overwrites what a crashed create left, a delete of
something already gone succeeds.

    create(volume_id, size_gb)                          an empty volume
    create_from_snapshot(volume_id, snapshot_id, size_gb, snapshot_volume_id=)
    create_from_volume(volume_id, source_id, size_gb)
    create_from_image(volume_id, image, chunks, size_gb)  image: compute Image,
                                                        chunks(): its bytes
    extend(volume_id, size_gb)                          grow only
    delete(volume_id)
    snapshot(snapshot_id, volume_id)
    delete_snapshot(snapshot_id, volume_id)
    exists(volume_id) -> bool
    connection(volume_id) -> VolumeConnection   how a host reaches it (attach)

A failure the user should read is a BackendError (its message becomes the
volume's fault).
"""

from __future__ import annotations

import asyncio
import os

from nimbus.imagebackend import qemu_img

GIB = 1 << 30
BACKENDS = ("file", "rbd")


class BackendError(Exception):
    """An operation failed for a reason worth showing on the volume."""


class BackendBusy(BackendError):
    """Refused until something else goes first (a snapshot's clones): the
    record goes back to where it was, with the reason as its fault."""


async def fetch_to_raw(image, chunks, fetched: str, raw: str, size_gb: int) -> None:
    """An image's bytes into `fetched`, checked (readable, no backing file,
    a virtual size that fits the volume), then as raw at `raw` (a raw image
    is renamed, anything else converted). The caller removes both after."""
    with open(fetched, "wb") as f:
        async for chunk in chunks():
            await asyncio.to_thread(f.write, chunk)
    try:
        info = await qemu_img.info(fetched)
    except qemu_img.QemuImgError as exc:
        raise BackendError(f"image {image.id} is not a readable disk image: {exc}") from None
    if info.get("backing-filename"):
        raise BackendError(f"image {image.id} has a backing file")
    if info["virtual-size"] > size_gb * GIB:
        raise BackendError(f"image {image.id} is {info['virtual-size'] / GIB:.2f} GB, "
                           f"larger than the volume ({size_gb} GB)")
    if info.get("format") == "raw":
        os.replace(fetched, raw)
    else:
        await qemu_img.convert_to_raw(fetched, info["format"], raw)


def make(kind: str, *, root: str = "", ceph_conf: str = "", volumes_pool: str = "volumes",
         images_pool: str = "images", rbd_user: str = ""):
    if kind == "file":
        from nimbus.volumebackend.file import FileBackend
        return FileBackend(root)
    if kind == "rbd":
        from nimbus.volumebackend.rbd import RbdBackend   # needs Ceph's python modules
        if not ceph_conf:
            raise SystemExit("volume backend rbd needs --ceph-conf")
        return RbdBackend(ceph_conf, volumes_pool=volumes_pool, images_pool=images_pool,
                          cache_dir=root, user=rbd_user)
    raise SystemExit(f"volume backend must be one of {', '.join(BACKENDS)}, not {kind!r}")
