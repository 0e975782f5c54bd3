"""Where DatabaseService keeps backup bytes: files under the state
directory (`<state_dir>/backups/<backup id>`) by default. Guests never
touch the store: their bytes arrive over GuestAgentService/UploadBackup and
leave over DownloadBackup, so a store with credentials (a RADOS pool) would
hold them here alone.

A write goes to `<id>.part` and is renamed only once every byte is in and
the guest's own size and checksum agree with what arrived: a reader never
sees half a backup.

`RadosBackupStore` keeps them in a RADOS pool instead (the Ceph tier;
`--backup-store rados`). RADOS objects are bounded (osd_max_object_size,
128 MiB by default, and one write by osd_max_write_size), so a backup is
striped into chunk objects `<id>.00000000`, `<id>.00000001`, … of
`object_size` bytes, written strictly in order, and becomes visible only
when its head object `<id>` (JSON: size, sha256, chunks, object size) is
written last. A delete removes the head first (the backup is gone at once),
then the chunks from the last to the first, so whatever a crash leaves is
always a contiguous run from chunk 0 that the next delete finds by probing
upwards: no listing of the pool is ever needed.

Both stores have the same interface: open_part -> writer (write, commit,
abort; `.size` and `.hash` as bytes arrive), read, size, checksum, delete;
every call that touches the store is a coroutine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import AsyncIterator

CHUNK = 1 << 20


class BackupStore:
    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def _path(self, location: str) -> str:
        if not location or "/" in location or location.startswith("."):
            raise ValueError(f"bad backup location {location!r}")
        return os.path.join(self.directory, location)

    def open_part(self, backup_id: str) -> "PartWriter":
        return PartWriter(self._path(backup_id))

    async def read(self, location: str) -> AsyncIterator[bytes]:
        with open(self._path(location), "rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk

    async def size(self, location: str) -> int | None:
        """The stored size, None when the bytes are gone."""
        try:
            return os.stat(self._path(location)).st_size
        except (FileNotFoundError, ValueError):
            return None

    async def checksum(self, location: str) -> str:
        def digest() -> str:
            h = hashlib.sha256()
            with open(self._path(location), "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            return h.hexdigest()
        return await asyncio.to_thread(digest)

    async def close(self) -> None:
        pass

    async def delete(self, location: str) -> None:
        """Idempotent; a leftover part file goes too."""
        for path in (self._path(location), self._path(location) + ".part"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class PartWriter:
    """Bytes into `<path>.part`, hashed as they come; `commit` renames."""

    def __init__(self, path: str):
        self.path = path
        self.file = open(path + ".part", "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    async def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        await asyncio.to_thread(self.file.write, data)

    async def commit(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.path + ".part", self.path)
        return os.path.basename(self.path)

    async def abort(self) -> None:
        self.file.close()
        try:
            os.unlink(self.path + ".part")
        except FileNotFoundError:
            pass


# ---- RADOS -----------------------------------------------------------------------

OBJECT_SIZE = 4 << 20   # like an RBD image's objects: well under osd_max_object_size


def _chunk_name(backup_id: str, index: int) -> str:
    return f"{backup_id}.{index:08d}"


def _read_head(ioctx, location: str) -> dict | None:
    import rados
    try:
        return json.loads(ioctx.read(location, 1 << 16))
    except rados.ObjectNotFound:
        return None


def _read_chunk(ioctx, name: str, length: int) -> bytes:
    import rados
    try:
        return ioctx.read(name, length)
    except rados.ObjectNotFound:
        raise FileNotFoundError(f"backup chunk {name} is missing") from None


GAP_PROBE = 32   # chunks looked for past the last one found


def _remove_backup(ioctx, backup_id: str) -> None:
    """Head first, then the chunks from the last down to chunk 0: the
    head's count of them (a chunk lost to damage leaves no gap behind),
    and beyond it as long as there are more (a partial write has no head)."""
    import rados
    head = _read_head(ioctx, backup_id)
    try:
        ioctx.remove_object(backup_id)
    except rados.ObjectNotFound:
        pass
    count = head["chunks"] if head else 0
    # One writer leaves 0..count-1 (see the module's docstring). A gap is
    # possible when an old leader's upload went on writing after a new one
    # removed its first chunks: look past a gap for GAP_PROBE chunks more.
    present, index, misses = list(range(count)), count, 0
    while misses < GAP_PROBE:
        try:
            ioctx.stat(_chunk_name(backup_id, index))
            present.append(index)
            misses = 0
        except rados.ObjectNotFound:
            misses += 1
        index += 1
    for index in reversed(present):
        try:
            ioctx.remove_object(_chunk_name(backup_id, index))
        except rados.ObjectNotFound:
            pass


class RadosBackupStore:
    """Backups in a RADOS pool through one lazily opened librados
    connection (the rbd backends' `_Cluster`: blocking calls in its threads)."""

    def __init__(self, conf_path: str, pool: str = "backups", user: str = "",
                 object_size: int = OBJECT_SIZE):
        from nimbus.imagebackend.rbd import _Cluster   # librados only where this store is used
        self.cluster = _Cluster(conf_path, threads=4, user=user)
        self.pool = pool
        self.object_size = object_size

    @staticmethod
    def _check(location: str) -> str:
        if not location or "/" in location or location.startswith(".") or "." in location:
            raise ValueError(f"bad backup location {location!r}")
        return location

    async def _io(self, fn, *args):
        """fn(ioctx, *args) in a cluster thread, on an ioctx of the pool."""
        def run(conn):
            with conn.open_ioctx(self.pool) as ioctx:
                return fn(ioctx, *args)
        return await self.cluster.call(run)

    def open_part(self, backup_id: str) -> "RadosPartWriter":
        return RadosPartWriter(self, self._check(backup_id))

    async def read(self, location: str) -> AsyncIterator[bytes]:
        head = await self._io(_read_head, self._check(location))
        if head is None:
            raise FileNotFoundError(f"backup {location} is not in pool {self.pool}")
        for index in range(head["chunks"]):
            # One call per object (4 MiB), yielded in CHUNK pieces (a gRPC message each).
            data = await self._io(_read_chunk, _chunk_name(location, index), head["object_size"])
            for offset in range(0, len(data), CHUNK):
                yield data[offset:offset + CHUNK]

    async def size(self, location: str) -> int | None:
        try:
            head = await self._io(_read_head, self._check(location))
        except ValueError:
            return None
        return None if head is None else head["size"]

    async def checksum(self, location: str) -> str:
        """Of the bytes as stored (read back), not the head's record of
        them; "" (matching nothing) when a chunk is missing."""
        h = hashlib.sha256()
        try:
            async for chunk in self.read(location):
                h.update(chunk)
        except FileNotFoundError:
            return ""
        return h.hexdigest()

    async def delete(self, location: str) -> None:
        """Idempotent; a leftover partial write (chunks, no head) goes too."""
        await self._io(_remove_backup, self._check(location))

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.close)   # waits for running calls


class RadosPartWriter:
    """Bytes buffered into object-sized chunks, each written (write_full) as
    it fills; `commit` writes the last one, then the head."""

    def __init__(self, store: RadosBackupStore, backup_id: str):
        self.store = store
        self.backup_id = backup_id
        self.hash = hashlib.sha256()
        self.size = 0
        self.chunks = 0
        self.buffer = bytearray()
        self._inflight: asyncio.Task | None = None

    async def _put(self, name: str, data: bytes) -> None:
        """One object, written to the end even when the upload is cancelled
        meanwhile (its thread would finish the write anyway): abort waits
        for it, so a delete never runs before a write it must see."""
        self._inflight = asyncio.ensure_future(
            self.store._io(lambda ioctx: ioctx.write_full(name, data)))
        await asyncio.shield(self._inflight)

    async def _flush(self, block: bytes) -> None:
        await self._put(_chunk_name(self.backup_id, self.chunks), block)
        self.chunks += 1

    async def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        self.buffer += data
        limit = self.store.object_size
        while len(self.buffer) >= limit:
            block = bytes(self.buffer[:limit])
            del self.buffer[:limit]
            await self._flush(block)

    async def commit(self) -> str:
        if self.buffer:
            await self._flush(bytes(self.buffer))
            self.buffer.clear()
        head = json.dumps({"size": self.size, "sha256": self.hash.hexdigest(), "chunks": self.chunks,
                           "object_size": self.store.object_size}).encode()
        await self._put(self.backup_id, head)
        return self.backup_id

    async def abort(self) -> None:
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)
        await self.store.delete(self.backup_id)


def for_config(cfg) -> "BackupStore | RadosBackupStore":
    """--backup-store file (under the state directory) or rados (--rados-backups-pool)."""
    if cfg.backup_store == "file":
        return BackupStore(os.path.join(cfg.state_dir, "backups"))
    if cfg.backup_store == "rados":
        if not cfg.ceph_conf:
            raise SystemExit("--backup-store rados needs --ceph-conf")
        if not 4096 <= cfg.rados_backups_object_size <= 64 << 20:   # osd_max_write_size: 90 MB
            raise SystemExit("--rados-backups-object-size is 4096 to 67108864 bytes")
        return RadosBackupStore(cfg.ceph_conf, cfg.rados_backups_pool, cfg.rbd_user,
                                cfg.rados_backups_object_size)
    raise SystemExit("--backup-store is file or rados")
