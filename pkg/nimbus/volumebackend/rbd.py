"""The `rbd` volume backend (Cinder's RBD driver) on the Ceph nimbus runs.

    volumes/volume-<id>                   a volume
    volumes/volume-<id>@snapshot-<sid>    a snapshot: protected, so it can be cloned

  * from a snapshot: a copy-on-write clone of the protected snapshot (no
    data copied), grown to the volume's size;
  * from a volume: a clone of a temporary protected snapshot of the source,
    flattened at once and the snapshot removed, so the source stays free to
    be deleted (Cinder keeps the chain up to rbd_max_clone_depth; nimbus
    keeps none);
  * from an image: a clone of images/<image id>@snap when the image is raw
    and cloneable there (what the RBD image store writes), else fetched
    through the API, converted to raw and imported (sparse);
  * extend: resize; delete: the image (a clone of an image or a snapshot is
    just removed: a child never blocks its own removal);
  * a snapshot with clones cannot be removed (unprotect fails while
    children exist): its delete is refused with the reason (BackendBusy),
    and the snapshot stays available, as Cinder's SnapshotIsBusy.

The cluster helpers are the RBD image backend's (one librados connection,
opened lazily, blocking calls in worker threads). Only the volume manager
holds this backend, hence the Ceph credentials; a host gets the
connection (pool/name and the monitors) over its assignment stream.
"""

from __future__ import annotations

import os

import rbd

from nimbus.imagebackend import ImageError
from nimbus.imagebackend.rbd import _clone, _Cluster, _grow, _import_file, _remove_image
from nimbus.volumebackend import GIB, BackendBusy, BackendError, fetch_to_raw


def _volume(volume_id: str) -> str:
    return f"volume-{volume_id}"


def _snap(snapshot_id: str) -> str:
    return f"snapshot-{snapshot_id}"


# ---- blocking helpers (run in the cluster's threads) -------------------------------


def _create(conn, pool: str, name: str, size: int) -> None:
    with conn.open_ioctx(pool) as ioctx:
        _remove_image(conn, ioctx, name)   # what a crashed attempt left
        rbd.RBD().create(ioctx, name, size, old_format=False)


def _protected_snapshot(conn, pool: str, name: str, snap: str) -> None:
    with conn.open_ioctx(pool) as ioctx:
        try:
            with rbd.Image(ioctx, name) as image:
                if snap not in {s["name"] for s in image.list_snaps()}:
                    image.create_snap(snap)
                if not image.is_protected_snap(snap):
                    image.protect_snap(snap)
        except rbd.ImageNotFound:
            raise BackendError(f"{pool}/{name} does not exist") from None


def _clone_snapshot(conn, pool: str, parent: str, snap: str, name: str, size: int,
                    flatten: bool = False) -> None:
    with conn.open_ioctx(pool) as ioctx:
        _remove_image(conn, ioctx, name)
        try:
            rbd.RBD().clone(ioctx, parent, snap, ioctx, name)
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            raise BackendError(f"{pool}/{parent}@{snap} does not exist") from None
        with rbd.Image(ioctx, name) as image:
            if image.size() > size:
                _remove_image(conn, ioctx, name)
                raise BackendError(f"the source is {image.size() / GIB:.2f} GB, larger than the "
                                   f"volume ({size // GIB} GB)")
            if image.size() < size:
                image.resize(size)
            if flatten:
                image.flatten()


def _remove_snapshot(conn, pool: str, name: str, snap: str) -> None:
    with conn.open_ioctx(pool) as ioctx:
        try:
            with rbd.Image(ioctx, name) as image:
                if snap not in {s["name"] for s in image.list_snaps()}:
                    return
                if image.is_protected_snap(snap):
                    image.set_snap(snap)
                    children = [c for c in image.list_children2() if not c["trash"]]
                    image.set_snap(None)
                    if children:
                        raise BackendBusy(
                            f"snapshot has {len(children)} dependent volume(s) cloned from it "
                            f"({', '.join(c['image'] for c in children[:3])}): delete them first")
                    image.unprotect_snap(snap)
                image.remove_snap(snap)
        except rbd.ImageNotFound:
            return


def _exists(conn, pool: str, name: str) -> bool:
    with conn.open_ioctx(pool) as ioctx:
        return name in rbd.RBD().list(ioctx)


class RbdBackend:
    kind = "rbd"

    def __init__(self, conf_path: str, volumes_pool: str = "volumes", images_pool: str = "images",
                 *, cache_dir: str, user: str = ""):
        self.pool = volumes_pool
        self.images_pool = images_pool
        self.cluster = _Cluster(conf_path, user=user)   # user: the cephx name without "client."
        self.cache_dir = cache_dir   # where an image is fetched to before its import
        os.makedirs(cache_dir, exist_ok=True)

    async def create(self, volume_id: str, size_gb: int) -> None:
        await self.cluster.call(_create, self.pool, _volume(volume_id), size_gb * GIB)

    async def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int,
                                   snapshot_volume_id: str = "") -> None:
        await self.cluster.call(_clone_snapshot, self.pool, _volume(snapshot_volume_id),
                                _snap(snapshot_id), _volume(volume_id), size_gb * GIB)

    async def create_from_volume(self, volume_id: str, source_id: str, size_gb: int) -> None:
        snap = f"clone-{volume_id}"
        await self.cluster.call(_protected_snapshot, self.pool, _volume(source_id), snap)
        try:
            await self.cluster.call(_clone_snapshot, self.pool, _volume(source_id), snap,
                                    _volume(volume_id), size_gb * GIB, True)
        finally:
            await self.cluster.call(_remove_snapshot, self.pool, _volume(source_id), snap)

    async def create_from_image(self, volume_id: str, image, chunks, size_gb: int) -> None:
        name = _volume(volume_id)
        try:
            cloned = image.disk_format == "raw" and await self.cluster.call(
                _clone, self.images_pool, image.id, self.pool, name, size_gb)
        except ImageError as exc:
            raise BackendError(f"image {image.id}: {exc}") from None
        if not cloned:
            await self._import_image(name, image, chunks, size_gb)
        await self.cluster.call(_grow, self.pool, name, size_gb * GIB)

    async def _import_image(self, name: str, image, chunks, size_gb: int) -> None:
        fetched = os.path.join(self.cache_dir, f"{name}.image")
        raw = os.path.join(self.cache_dir, f"{name}.raw")
        try:
            await fetch_to_raw(image, chunks, fetched, raw, size_gb)
            await self.cluster.call(_import_file, self.pool, name, raw)
        finally:
            for leftover in (fetched, raw):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    async def extend(self, volume_id: str, size_gb: int) -> None:
        if not await self.exists(volume_id):
            raise BackendError(f"volume {volume_id} has no RBD image")
        await self.cluster.call(_grow, self.pool, _volume(volume_id), size_gb * GIB)

    async def delete(self, volume_id: str) -> None:
        def remove(conn):
            with conn.open_ioctx(self.pool) as ioctx:
                _remove_image(conn, ioctx, _volume(volume_id), flatten_children=False)
        try:
            await self.cluster.call(remove)
        except rbd.ImageBusy:
            raise BackendBusy(f"volume {volume_id} has clones of its snapshots") from None

    async def exists(self, volume_id: str) -> bool:
        return await self.cluster.call(_exists, self.pool, _volume(volume_id))

    async def snapshot(self, snapshot_id: str, volume_id: str) -> None:
        await self.cluster.call(_protected_snapshot, self.pool, _volume(volume_id),
                                _snap(snapshot_id))

    async def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        await self.cluster.call(_remove_snapshot, self.pool, _volume(volume_id), _snap(snapshot_id))

    async def connection(self, volume_id: str):
        from nimbus.state.v1 import records_pb2
        await self.cluster.call(lambda conn: None)   # connected: the monitors are known
        return records_pb2.VolumeConnection(
            driver="rbd", name=f"{self.pool}/{_volume(volume_id)}",
            monitors=[f"{host}:{port}" for host, port in self.cluster.monitors])

    def close(self) -> None:
        self.cluster.close()
