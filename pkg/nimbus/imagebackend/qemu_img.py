"""qemu-img, run as a subprocess without blocking the event loop."""

from __future__ import annotations

import asyncio
import json
import struct


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


QCOW2_MAGIC = b"QFI\xfb"
BACKING_FORMAT_EXT = 0xE2792ACA


def backing_of(path: str) -> tuple[str, str]:
    """(backing file name, backing format) as a qcow2 image's header holds
    them, read without a qemu-img process (("", "") when not qcow2 or none;
    the format "" when unrecorded). The layout is qcow2's spec: name at
    backing_file_offset; header extensions after the v2 (72-byte) or v3
    (header_length) header, each type, length, data padded to 8."""
    with open(path, "rb") as f:
        head = f.read(104)
        if len(head) < 72 or head[:4] != QCOW2_MAGIC:
            return "", ""
        version, offset, size = struct.unpack(">IQI", head[4:20])
        if not offset or not size:
            return "", ""
        f.seek(offset)
        name = f.read(size).decode(errors="replace")
        at = struct.unpack(">I", head[100:104])[0] if version >= 3 and len(head) >= 104 else 72
        fmt = ""
        while at + 8 <= offset:
            f.seek(at)
            kind, length = struct.unpack(">II", f.read(8))
            if kind == 0:
                break
            if kind == BACKING_FORMAT_EXT:
                fmt = f.read(length).decode(errors="replace")
                break
            at += 8 + (length + 7) // 8 * 8
    return name, fmt


async def create_overlay(backing: str, backing_format: str, dest: str, size_bytes: int) -> None:
    await run("create", "-q", "-f", "qcow2", "-F", backing_format, "-b", backing, dest,
              str(size_bytes))


async def convert_to_raw(source: str, source_format: str, dest: str) -> None:
    await run("convert", "-q", "-f", source_format, "-O", "raw", source, dest)
