"""The Ceph RBD image backend (Nova's Rbd imagebackend) and image store (Glance's rbd store).

Instance disks live in the `vms` pool as `<instance_id>_disk` (root) and
`<instance_id>_disk.config` (config drive); libvirt reaches them over the
network (`DiskSource(kind="network")`), so no disk touches the host's
filesystem except while being imported.

Root disk, as Nova does it:
  * clone: the image is in the `images` pool as raw with a protected
    snapshot `snap` (what `RbdImageStore` writes for raw images) -> a
    copy-on-write clone `vms/<id>_disk` of `images/<image_id>@snap`
    (~40 ms with the resize, no data copied). The image is looked up by id
    in `images_pool` of this backend's cluster (the protocol passes no
    location), i.e. the image store and the backend share the cluster;
  * otherwise fetch_to_raw into the host's `_base` cache (`.part`, qemu-img
    info, backing files refused, converted to raw, atomic rename; one
    download per image under concurrency), then imported into
    `vms/<id>_disk` (zero blocks are skipped: the RBD image stays sparse).
    The raw base stays cached in `_base` like Nova's, so a second server
    from the same image skips the download but imports again.
  Either way the disk is then grown to the flavor's root_gb; an image larger
  than root_gb is refused (ImageError) before anything is created. A
  leftover `vms/<id>_disk` (an earlier attempt for the same instance) is
  replaced, as the local backend overwrites its overlay.

Clone semantics: we always clone from a *protected* snapshot (required by
clone format v1; harmless with v2). Unprotecting fails while clones exist,
so `RbdImageStore.delete` refuses (ImageInUse) an image some server disk is
still cloned from -- Glance's rbd store does the same (InUseByStore); the
alternative, flattening every child, would silently copy the image into
each server's disk.

librados/librbd calls block, so each runs in a small dedicated thread pool
(the Cython bindings release the GIL); one cluster connection per backend or
store, opened on first use and reused. `close()` (blocking: it waits for
running calls) shuts both down.

Capacity (`capacity_gb`): the cluster's raw size and free space as the mgr
reports it (`rados_cluster_stat`, what Nova's older rbd driver used)
divided by the `vms` pool's replica count, i.e. roughly what the pool can
still hold. Without a ceph-mgr those stats are all zeros, so we fall back to
asking every up OSD for its statfs (`ceph tell osd.N perf dump`:
osd.stat_bytes / stat_bytes_avail, the numbers an OSD would report to the
mgr) -- one ~1 ms command per OSD, fine for test and small clusters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import threading
import time
from typing import AsyncIterator, Callable, TypeVar
from urllib.parse import urlparse

import rados
import rbd

from nimbus import errors
from nimbus.imagebackend import DiskSource, Download
from nimbus.imagebackend.local import ImageCache, check_fits

GiB = 1 << 30
MiB = 1 << 20
SNAP = "snap"                  # the protected snapshot clones are made from (Glance's name)
IO_CHUNK = 4 * MiB             # = the default RBD object size
READ_CHUNK = 1 * MiB           # what RbdImageStore.read yields
REMOVE_RETRIES = 10            # remove() fails with ImageBusy while a client (qemu) still watches

T = TypeVar("T")
_ZEROS = bytes(IO_CHUNK)


def _is_zero(block: bytes) -> bool:
    # A memcmp against zeros (0.06 ms per 4 MiB; bytes.count(0) takes 1.5 ms).
    return block == (_ZEROS if len(block) == IO_CHUNK else bytes(len(block)))


class ImageInUse(errors.FailedPrecondition):
    """The stored image still has clones (server disks): it cannot be deleted."""


class _Cluster:
    """One librados connection, opened lazily, and the threads its blocking calls run in."""

    def __init__(self, conf_path: str, threads: int = 8, user: str = ""):
        self.conf_path = conf_path
        # The cephx user without "client." ("" is librados' default, admin);
        # its keyring is found where ceph.conf's `keyring` says.
        self.user = user
        self._rados: rados.Rados | None = None
        self._connect_lock = asyncio.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rbd")
        self.monitors: tuple[tuple[str, int], ...] = ()
        self.fsid = ""

    async def call(self, fn: Callable[..., T], *args) -> T:
        """fn(rados_connection, *args) in a worker thread."""
        if self._rados is None:
            async with self._connect_lock:
                if self._rados is None:
                    await self._run(self._connect)
        return await self._run(fn, self._rados, *args)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args))

    def _connect(self) -> None:
        conn = rados.Rados(conffile=self.conf_path, rados_id=self.user or None)
        try:
            conn.connect(timeout=30)
            dump = _mon_command(conn, "mon dump")
            self.fsid = conn.get_fsid()
        except BaseException:
            conn.shutdown()
            raise
        monitors = []
        for mon in dump["mons"]:
            addrs = mon["public_addrs"]["addrvec"]
            # libvirt's <host name port> carries no protocol; a client tries
            # both for an unusual port, so prefer the msgr2 address.
            addr = next((a for a in addrs if a["type"] == "v2"), addrs[0])["addr"]
            host, _, port = addr.rpartition(":")
            monitors.append((host.strip("[]"), int(port)))
        self.monitors = tuple(monitors)
        self._rados = conn

    def close(self) -> None:
        if self._rados is not None:
            self._rados.shutdown()
            self._rados = None
        self._pool.shutdown(wait=True)


def _mon_command(conn: rados.Rados, prefix: str, **args) -> dict:
    ret, out, err = conn.mon_command(json.dumps({"prefix": prefix, "format": "json", **args}),
                                     b"", timeout=30)
    if ret != 0:
        raise OSError(-ret, f"ceph {prefix}: {err}")
    return json.loads(out)


# ---- blocking helpers (run in _Cluster threads) ------------------------------


def _import_file(conn: rados.Rados, pool: str, name: str, path: str) -> None:
    """`rbd import` of a local file, skipping holes and zero blocks."""
    size = os.path.getsize(path)
    with conn.open_ioctx(pool) as ioctx:
        _remove_image(conn, ioctx, name)   # a leftover of an earlier attempt for this instance
        rbd.RBD().create(ioctx, name, size, old_format=False)
        try:
            with rbd.Image(ioctx, name) as image, open(path, "rb") as f:
                fd, offset = f.fileno(), 0
                while offset < size:
                    try:
                        offset = os.lseek(fd, offset, os.SEEK_DATA)
                    except OSError:   # ENXIO: only a hole is left
                        break
                    end = os.lseek(fd, offset, os.SEEK_HOLE)
                    while offset < end:
                        block = os.pread(fd, min(IO_CHUNK - offset % IO_CHUNK, end - offset), offset)
                        if not _is_zero(block):
                            image.write(block, offset)
                        offset += len(block)
        except BaseException:
            _remove_image(conn, ioctx, name)
            raise


def _clone(conn: rados.Rados, images_pool: str, image_id: str, vms_pool: str, name: str,
           root_gb: int) -> bool:
    """A COW clone of images/<image_id>@snap; False when the image is not cloneable."""
    with conn.open_ioctx(images_pool) as src:
        try:
            with rbd.Image(src, image_id, snapshot=SNAP, read_only=True) as parent:
                if not parent.is_protected_snap(SNAP):
                    return False
                size = parent.size()
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            return False
        check_fits({"virtual-size": size}, root_gb)
        with conn.open_ioctx(vms_pool) as dest:
            _remove_image(conn, dest, name)
            rbd.RBD().clone(src, image_id, SNAP, dest, name)
    return True


def _grow(conn: rados.Rados, pool: str, name: str, size: int) -> None:
    with conn.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
        if image.size() < size:
            image.resize(size)


# The snapshot a move takes of a root disk before growing it in place
# (Nova's rbd driver does the same): a revert rolls back to it, a confirm
# removes it. RBD images cannot be shrunk safely any other way.
REVERT_SNAP = "nimbus_resize"


def _has_snap(image: rbd.Image, snap: str) -> bool:
    return any(s["name"] == snap for s in image.list_snaps())


def _keep_revert_point(conn: rados.Rados, pool: str, name: str) -> None:
    with conn.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
        if not _has_snap(image, REVERT_SNAP):
            image.create_snap(REVERT_SNAP)


def _revert_to_point(conn: rados.Rados, pool: str, name: str) -> None:
    with conn.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
        if _has_snap(image, REVERT_SNAP):
            image.rollback_to_snap(REVERT_SNAP)   # data and size as they were
            image.remove_snap(REVERT_SNAP)


def _drop_revert_point(conn: rados.Rados, pool: str, name: str) -> None:
    with conn.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
        if _has_snap(image, REVERT_SNAP):
            image.remove_snap(REVERT_SNAP)


def _remove_image(conn: rados.Rados, ioctx: rados.Ioctx, name: str,
                  flatten_children: bool = True) -> None:
    """Remove an image and its snapshots. Idempotent. Clones of a snapshot
    (e.g. Nova's direct snapshot of a server disk into the images pool) are
    flattened first, so they survive; without flatten_children a snapshot
    with clones makes this fail with rbd.ImageBusy (clone format v1)."""
    try:
        with rbd.Image(ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap["name"]):
                    if flatten_children:
                        image.set_snap(snap["name"])
                        for child in image.list_children2():
                            if not child["trash"]:
                                _flatten(conn, child)
                        image.set_snap(None)
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
    except rbd.ImageNotFound:
        return
    for attempt in range(REMOVE_RETRIES):
        try:
            rbd.RBD().remove(ioctx, name)
            return
        except rbd.ImageNotFound:
            return
        except rbd.ImageBusy:   # a qemu that just exited may still hold its watch
            if attempt == REMOVE_RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _flatten(conn: rados.Rados, child: dict) -> None:
    with conn.open_ioctx(child["pool"]) as ioctx:
        ioctx.set_namespace(child["pool_namespace"])
        try:
            with rbd.Image(ioctx, child["image"]) as image:
                image.flatten()
        except rbd.ImageNotFound:
            pass


def _remove(conn: rados.Rados, pool: str, name: str) -> None:
    with conn.open_ioctx(pool) as ioctx:
        _remove_image(conn, ioctx, name)


def _remove_prefixed(conn: rados.Rados, pool: str, prefix: str) -> None:
    with conn.open_ioctx(pool) as ioctx:
        for name in rbd.RBD().list(ioctx):
            if name.startswith(prefix):
                _remove_image(conn, ioctx, name)


def _capacity(conn: rados.Rados, pool: str) -> tuple[int, int]:
    """(total, free) bytes the pool can hold (raw space / replica count)."""
    stats = conn.get_cluster_stats()
    total, free = stats["kb"] * 1024, stats["kb_avail"] * 1024
    if total == 0:   # no ceph-mgr feeding the stats: ask the OSDs themselves
        for osd in _mon_command(conn, "osd dump")["osds"]:
            if not osd["up"]:
                continue
            ret, out, err = conn.osd_command(osd["osd"], json.dumps({"prefix": "perf dump"}),
                                             b"", timeout=10)
            if ret == 0:
                counters = json.loads(out)["osd"]
                total += counters["stat_bytes"]
                free += counters["stat_bytes_avail"]
    replicas = max(1, _mon_command(conn, "osd pool get", pool=pool, var="size")["size"])
    return total // replicas, free // replicas


# ---- the backend ---------------------------------------------------------------


class RbdBackend:
    def __init__(self, conf_path: str, images_pool: str = "images", vms_pool: str = "vms", *,
                 cache_dir: str):
        self.images_pool = images_pool
        self.vms_pool = vms_pool
        self.cluster = _Cluster(conf_path)
        # The agent fetches kernels/ramdisks through `backend.cache` too (same locks).
        self.cache = ImageCache(cache_dir, force_raw=True)

    def _source(self, name: str) -> DiskSource:
        return DiskSource(kind="network", format="raw", name=f"{self.vms_pool}/{name}",
                          monitors=self.cluster.monitors)

    async def create_root_disk(self, instance_id: str, instance_dir: str, image_id: str,
                               disk_format: str, download: Download, root_gb: int) -> DiskSource:
        name = f"{instance_id}_disk"
        cloned = disk_format == "raw" and await self.cluster.call(
            _clone, self.images_pool, image_id, self.vms_pool, name, root_gb)
        if not cloned:
            base, info = await self.cache.fetch(image_id, download)
            check_fits(info, root_gb)
            await self.cluster.call(_import_file, self.vms_pool, name, base)
        if root_gb:
            try:
                await self.cluster.call(_grow, self.vms_pool, name, root_gb * GiB)
            except BaseException:
                await self.cluster.call(_remove, self.vms_pool, name)
                raise
        return self._source(name)

    async def moved_disks(self, instance_id: str, instance_dir: str, image_id: str,
                          download: Download, root_gb: int,
                          config_drive: bool) -> tuple[DiskSource, DiskSource | None]:
        """A moving server's disks on its destination: they stay in Ceph,
        the root grown in place to root_gb (nothing is copied)."""
        name = f"{instance_id}_disk"
        if root_gb:
            await self.cluster.call(_grow, self.vms_pool, name, root_gb * GiB)
        return self._source(name), self._source(f"{name}.config") if config_drive else None

    async def keep_revert_point(self, instance_id: str) -> None:
        await self.cluster.call(_keep_revert_point, self.vms_pool, f"{instance_id}_disk")

    async def revert_to_point(self, instance_id: str) -> None:
        await self.cluster.call(_revert_to_point, self.vms_pool, f"{instance_id}_disk")

    async def drop_revert_point(self, instance_id: str) -> None:
        await self.cluster.call(_drop_revert_point, self.vms_pool, f"{instance_id}_disk")

    async def import_config_drive(self, instance_id: str, iso_path: str) -> DiskSource:
        name = f"{instance_id}_disk.config"
        await self.cluster.call(_import_file, self.vms_pool, name, iso_path)
        os.unlink(iso_path)
        return self._source(name)

    async def remove_disks(self, instance_id: str, instance_dir: str) -> None:
        await self.cluster.call(_remove_prefixed, self.vms_pool, f"{instance_id}_disk")

    async def capacity_gb(self) -> tuple[int, int]:
        total, free = await self.cluster.call(_capacity, self.vms_pool)
        return total // GiB, free // GiB

    def close(self) -> None:
        self.cluster.close()


# ---- the image store (Glance's rbd store) ---------------------------------------------


class RbdImageStore:
    """Image bytes as RBD images `<pool>/<image_id>`; raw images get a
    protected snapshot `snap` so compute hosts can clone them. Locations are
    Glance-style URLs: rbd://<fsid>/<pool>/<image>[/<snap>]."""

    def __init__(self, conf_path: str, pool: str = "images", user: str = ""):
        self.pool = pool
        self.cluster = _Cluster(conf_path, user=user)

    async def write(self, image_id: str, chunks: AsyncIterator[bytes], disk_format: str) -> str:
        """Store the stream as `<pool>/<image_id>` and return its location.
        Nothing is left behind when the stream or a Ceph call fails."""
        # A cancelled await leaves its thread running: never close the image under it.
        lock = threading.Lock()

        def create(conn):
            ioctx = conn.open_ioctx(self.pool)
            try:
                rbd.RBD().create(ioctx, image_id, 0, old_format=False)   # ImageExists if taken
                return ioctx, rbd.Image(ioctx, image_id)
            except BaseException:
                ioctx.close()
                raise

        def finish(_conn, size: int):
            with lock:
                image.resize(size)
                if disk_format == "raw":
                    image.create_snap(SNAP)
                    image.protect_snap(SNAP)

        def close(conn, remove: bool):
            with lock:
                try:
                    image.close()   # before remove: an open image holds a watch
                    if remove:
                        _remove_image(conn, ioctx, image_id)
                finally:
                    ioctx.close()

        ioctx, image = await self.cluster.call(create)
        try:
            await self.cluster.call(finish, await self._write_data(image, lock, chunks))
        except BaseException:
            await self.cluster.call(close, True)
            raise
        await self.cluster.call(close, False)
        snap = f"/{SNAP}" if disk_format == "raw" else ""
        return f"rbd://{self.cluster.fsid}/{self.pool}/{image_id}{snap}"

    async def _write_data(self, image: rbd.Image, lock: threading.Lock,
                          chunks: AsyncIterator[bytes]) -> int:
        """Write the stream in object-sized blocks, growing the image ahead of
        the data (doubling, at most 1 GiB at a time); zero blocks are skipped."""
        allocated = 0

        def flush(_conn, block: bytes, offset: int):
            nonlocal allocated
            with lock:
                end = offset + len(block)
                if end > allocated:
                    allocated = max(end, min(2 * allocated, allocated + GiB))
                    image.resize(allocated)
                if not _is_zero(block):
                    image.write(block, offset)

        buf, offset = bytearray(), 0
        async for chunk in chunks:
            buf += chunk
            while len(buf) >= IO_CHUNK:
                await self.cluster.call(flush, bytes(buf[:IO_CHUNK]), offset)
                del buf[:IO_CHUNK]
                offset += IO_CHUNK
        if buf:
            await self.cluster.call(flush, bytes(buf), offset)
            offset += len(buf)
        return offset

    def _parse(self, location: str) -> tuple[str, str, str | None]:
        url = urlparse(location)
        parts = url.path.strip("/").split("/")
        if url.scheme != "rbd" or len(parts) not in (2, 3):
            raise ValueError(f"not an rbd image location: {location!r}")
        return parts[0], parts[1], parts[2] if len(parts) == 3 else None

    async def read(self, location: str) -> AsyncIterator[bytes]:
        pool, name, snap = self._parse(location)

        def open_image(conn):
            ioctx = conn.open_ioctx(pool)
            try:
                return ioctx, rbd.Image(ioctx, name, snapshot=snap, read_only=True)
            except rbd.ImageNotFound:
                ioctx.close()
                # Deleted through another API replica whose delete this one's informer lags.
                raise errors.NotFound("image", name) from None
            except BaseException:
                ioctx.close()
                raise

        lock = threading.Lock()   # a cancelled read's thread may still be running at close

        def read(_conn, offset: int) -> bytes:
            with lock:
                return image.read(offset, min(READ_CHUNK, size - offset))

        def close(_conn):
            with lock:
                image.close()
                ioctx.close()

        ioctx, image = await self.cluster.call(open_image)
        try:
            size = image.size()
            for offset in range(0, size, READ_CHUNK):
                yield await self.cluster.call(read, offset)
        finally:
            await self.cluster.call(close)

    async def delete(self, location: str) -> None:
        """Remove the image and its snapshot. Idempotent. Raises ImageInUse,
        leaving the image as it was, while server disks are still cloned
        from it (as Glance's InUseByStore): flattening them instead would
        quietly copy the image into every one of those disks."""
        pool, name, _ = self._parse(location)

        def delete(conn):
            with conn.open_ioctx(pool) as ioctx:
                try:
                    with rbd.Image(ioctx, name, read_only=True) as image:
                        for snap in image.list_snaps():
                            image.set_snap(snap["name"])
                            children = [c for c in image.list_children2() if not c["trash"]]
                            if children:
                                raise ImageInUse(
                                    f"image {name} has {len(children)} clone(s), e.g. "
                                    f"{children[0]['pool']}/{children[0]['image']}: "
                                    f"delete those servers first")
                except rbd.ImageNotFound:
                    return
                try:
                    _remove_image(conn, ioctx, name, flatten_children=False)
                except rbd.ImageBusy as exc:   # a clone made since the check above
                    raise ImageInUse(f"image {name} is in use: {exc}") from None

        await self.cluster.call(delete)

    def close(self) -> None:
        self.cluster.close()
