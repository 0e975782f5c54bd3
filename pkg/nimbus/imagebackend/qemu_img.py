"""qemu-img, run as a subprocess without blocking the event loop."""

from __future__ import annotations

import asyncio
import json


class QemuImgError(Exception):
    pass


async def run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise QemuImgError(err.decode(errors="replace").strip() or f"qemu-img {args[0]} failed")
    return out.decode()


async def info(path: str) -> dict:
    # -U: read even while a running guest holds the image's lock.
    return json.loads(await run("info", "-U", "--output=json", path))


async def create_overlay(backing: str, backing_format: str, dest: str, size_bytes: int) -> None:
    await run("create", "-q", "-f", "qcow2", "-F", backing_format, "-b", backing, dest,
              str(size_bytes))


async def convert_to_raw(source: str, source_format: str, dest: str) -> None:
    await run("convert", "-q", "-f", source_format, "-O", "raw", source, dest)
