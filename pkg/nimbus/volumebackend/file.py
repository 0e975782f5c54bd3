"""The `file` volume backend: one sparse raw file per volume and per
snapshot under a directory of this machine. For development (`make run`)
and tests: the files are reachable by this machine's hypervisor only, so
it is single-machine only.

    <root>/volume-<id>      a volume
    <root>/snapshot-<id>    a snapshot (a full sparse copy)

Each file is written as <name>.part and renamed into place, so a crash
leaves either nothing or a complete file; a retried create overwrites the
.part a crashed one left.
"""

from __future__ import annotations

import asyncio
import os

from nimbus.volumebackend import GIB, BackendError, fetch_to_raw


class FileBackend:
    kind = "file"

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def volume_path(self, volume_id: str) -> str:
        return os.path.join(self.root, f"volume-{volume_id}")

    def snapshot_path(self, snapshot_id: str) -> str:
        return os.path.join(self.root, f"snapshot-{snapshot_id}")

    # ---- helpers -----------------------------------------------------------

    @staticmethod
    async def _copy(source: str, dest: str) -> None:
        """A sparse copy (cp keeps holes; reflinks where the filesystem can)."""
        if not os.path.exists(source):
            raise BackendError(f"the source {os.path.basename(source)} does not exist")
        proc = await asyncio.create_subprocess_exec(
            "cp", "--sparse=always", "--reflink=auto", source, dest,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise BackendError(f"copy failed: {err.decode(errors='replace').strip()}")

    @staticmethod
    def _grow(path: str, size_gb: int) -> None:
        have = os.path.getsize(path)
        if have > size_gb * GIB:
            raise BackendError(f"the source is {have / GIB:.2f} GB, larger than the volume "
                               f"({size_gb} GB)")
        os.truncate(path, size_gb * GIB)

    async def _publish(self, part: str, final: str, size_gb: int) -> None:
        self._grow(part, size_gb)
        os.replace(part, final)

    # ---- volumes -------------------------------------------------------------

    async def create(self, volume_id: str, size_gb: int) -> None:
        final = self.volume_path(volume_id)
        part = final + ".part"
        with open(part, "wb"):
            pass
        await self._publish(part, final, size_gb)

    async def create_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int,
                                   snapshot_volume_id: str = "") -> None:
        final = self.volume_path(volume_id)
        await self._copy(self.snapshot_path(snapshot_id), final + ".part")
        await self._publish(final + ".part", final, size_gb)

    async def create_from_volume(self, volume_id: str, source_id: str, size_gb: int) -> None:
        final = self.volume_path(volume_id)
        await self._copy(self.volume_path(source_id), final + ".part")
        await self._publish(final + ".part", final, size_gb)

    async def create_from_image(self, volume_id: str, image, chunks, size_gb: int) -> None:
        """Fetch the image, refuse a backing file or a virtual size above the
        volume's, convert it to raw (a raw image is taken as it is)."""
        final = self.volume_path(volume_id)
        fetched = final + ".image"
        try:
            await fetch_to_raw(image, chunks, fetched, final + ".part", size_gb)
            await self._publish(final + ".part", final, size_gb)
        finally:
            for leftover in (fetched, final + ".part"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    async def extend(self, volume_id: str, size_gb: int) -> None:
        path = self.volume_path(volume_id)
        if not os.path.exists(path):
            raise BackendError(f"volume {volume_id} has no file")
        self._grow(path, size_gb)

    async def delete(self, volume_id: str) -> None:
        for path in (self.volume_path(volume_id), self.volume_path(volume_id) + ".part",
                     self.volume_path(volume_id) + ".image"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    async def connection(self, volume_id: str):
        """How this machine's hypervisor reaches the volume: its file."""
        from nimbus.state.v1 import records_pb2
        return records_pb2.VolumeConnection(driver="file", path=self.volume_path(volume_id))

    async def exists(self, volume_id: str) -> bool:
        return os.path.exists(self.volume_path(volume_id))

    # ---- snapshots -------------------------------------------------------------

    async def snapshot(self, snapshot_id: str, volume_id: str) -> None:
        final = self.snapshot_path(snapshot_id)
        await self._copy(self.volume_path(volume_id), final + ".part")
        os.replace(final + ".part", final)

    async def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        for path in (self.snapshot_path(snapshot_id), self.snapshot_path(snapshot_id) + ".part"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
