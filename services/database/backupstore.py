"""Where DatabaseService keeps backup bytes: files under the state
directory (`<state_dir>/backups/<backup id>`) by default. Guests never
touch the store: their bytes arrive over GuestAgentService/UploadBackup and
leave over DownloadBackup, so a store with credentials (a RADOS pool) would
hold them here alone.

A write goes to `<id>.part` and is renamed only once every byte is in and
the guest's own size and checksum agree with what arrived: a reader never
sees half a backup."""

from __future__ import annotations

import asyncio
import hashlib
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

    def size(self, location: str) -> int | None:
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

    def delete(self, location: str) -> None:
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

    def commit(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.path + ".part", self.path)
        return os.path.basename(self.path)

    def abort(self) -> None:
        self.file.close()
        try:
            os.unlink(self.path + ".part")
        except FileNotFoundError:
            pass
