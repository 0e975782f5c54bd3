"""Backups on the guest: the datastore's own dump tool streamed to
DatabaseService (UploadBackup), and a restore streamed from it
(DownloadBackup) into the datastore's own client.

Logical dumps, on purpose: pg_dumpall (every database, the roles and their
password verifiers) and mariadb-dump (the user databases plus
`--system=users`: accounts and grants as portable SQL). They restore into
an instance prepared and secured as any other, with its own admin account
and system identifier, which a physical copy (pg_basebackup,
mariadb-backup: not in Debian's mariadb-server package here) would
overwrite with the source's. The backup keeps every byte the tool wrote; on
restore the plug-in drops the statements about the agent's own admin and
the superuser (`restore_keep`), so the new instance keeps its own."""

from __future__ import annotations

import asyncio
import hashlib
from typing import AsyncIterator

from nimbus import crashpoints
from nimbus.database.v1 import guest_pb2 as G
from nimbus.services.guestagent.datastore import Datastore, DatastoreError

CHUNK = 1 << 20


async def _stderr(proc) -> str:
    return (await proc.stderr.read()).decode(errors="replace").strip()


def _failed(tool: str, rc: int, err: str) -> DatastoreError:
    lines = err.splitlines()
    return DatastoreError(f"{tool} exited {rc}: {' | '.join(lines[-3:])}" if lines else f"{tool} exited {rc}")


async def upload_requests(datastore: Datastore, backup_id: str, failure: list):
    """UploadBackup's stream: header, the dump's bytes, trailer. A failing
    dump is put in `failure` (the call only sees its stream end)."""
    argv, env, tool = await datastore.backup_command()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd="/")
    except OSError as exc:
        failure.append(DatastoreError(f"cannot run {tool}: {exc.strerror}"))
        raise failure[-1] from None
    errors = asyncio.create_task(_stderr(proc))
    try:
        yield G.UploadBackupRequest(header=G.BackupHeader(backup_id=backup_id, tool=tool))
        digest, size = hashlib.sha256(), 0
        while chunk := await proc.stdout.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            yield G.UploadBackupRequest(data=chunk)
            crashpoints.reach("guestagent.backup.streaming")
        rc = await proc.wait()
        if rc != 0:
            failure.append(_failed(tool, rc, await errors))
            raise failure[-1]
        yield G.UploadBackupRequest(trailer=G.BackupTrailer(size_bytes=size,
                                                            checksum_sha256=digest.hexdigest()))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errors.cancel()


async def command_output(argv: list[str], env: dict) -> AsyncIterator[bytes]:
    """A command's stdout in chunks; DatastoreError at the end if it failed."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd="/")
    errors = asyncio.create_task(_stderr(proc))
    try:
        while chunk := await proc.stdout.read(CHUNK):
            yield chunk
        rc = await proc.wait()
        if rc != 0:
            raise _failed(argv[0], rc, await errors)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errors.cancel()


async def load(datastore: Datastore, chunks: AsyncIterator[bytes], source: G.RestoreFrom | None) -> None:
    """Feed a dump into the datastore's client, filtered line by line
    (`restore_keep`); a backup's checksum must be the recorded one
    (`source`; None for a replica's live copy)."""
    argv, env = datastore.restore_command()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env, cwd="/")
    errors = asyncio.create_task(_stderr(proc))
    keep = datastore.restore_keep()
    digest, size, rest = hashlib.sha256(), 0, b""
    try:
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            kept = [line for line in lines if keep(line)]
            if kept:
                proc.stdin.write(b"\n".join(kept) + b"\n")
                await proc.stdin.drain()
        if rest and keep(rest):
            proc.stdin.write(rest + b"\n")
        proc.stdin.close()
        rc = await proc.wait()
    except (BrokenPipeError, ConnectionResetError):
        rc = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if source is not None and (size, digest.hexdigest()) != (source.size_bytes, source.checksum_sha256):
        raise DatastoreError(f"backup {source.backup_id}: {size} bytes arrived with checksum "
                             f"{digest.hexdigest()[:12]}, not the recorded {source.size_bytes} "
                             f"({source.checksum_sha256[:12]})")
    if rc != 0:
        raise _failed(argv[0], rc, await errors)
    errors.cancel()
