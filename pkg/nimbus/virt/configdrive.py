"""Config drive: an ISO9660 image labelled `config-2` in the OpenStack
layout, which cloud-init (or the test guest's init) reads at boot.

    openstack/latest/meta_data.json     uuid, name, hostname, AZ, keys, files
    openstack/latest/user_data          when given
    openstack/latest/network_data.json
    openstack/content/NNNN              injected files' contents

Injected files and user data are secrets of the user: never logged."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile

from nimbus.compute.v1 import compute_pb2

LABEL = "config-2"


def hostname(name: str) -> str:
    """Nova's sanitize_hostname: lowercase letters, digits and '-', at most 63."""
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-.")[:63].strip("-")
    return host or "server"


def meta_data(server: compute_pb2.Server, availability_zone: str, public_keys: dict[str, str],
              files: list[tuple[str, bytes]]) -> dict:
    return {
        "uuid": server.id,
        "name": server.name,
        "hostname": hostname(server.name),
        "launch_index": server.launch_index,
        "availability_zone": availability_zone,
        "project_id": server.project_id,
        "meta": dict(server.metadata),
        "public_keys": public_keys,
        "keys": [{"name": name, "type": "ssh", "data": key} for name, key in public_keys.items()],
        "files": [{"path": path, "content_path": f"/content/{i:04d}"}
                  for i, (path, _) in enumerate(files)],
        "devices": [],
    }


async def build(iso_path: str, server: compute_pb2.Server, *, availability_zone: str = "nova",
                user_data: bytes = b"", network_data: dict | None = None,
                public_keys: dict[str, str] | None = None,
                files: list[tuple[str, bytes]] = ()) -> None:
    """Write the config drive ISO for `server` to iso_path."""
    staging = tempfile.mkdtemp(prefix="configdrive-", dir=os.path.dirname(iso_path))
    try:
        latest = os.path.join(staging, "openstack", "latest")
        content = os.path.join(staging, "openstack", "content")
        os.makedirs(latest)
        os.makedirs(content)
        files = list(files)
        with open(os.path.join(latest, "meta_data.json"), "w") as f:
            json.dump(meta_data(server, availability_zone, public_keys or {}, files), f)
        with open(os.path.join(latest, "network_data.json"), "w") as f:
            json.dump(network_data or {"links": [], "networks": [], "services": []}, f)
        if user_data:
            with open(os.path.join(latest, "user_data"), "wb") as f:
                f.write(user_data)
        for i, (_, data) in enumerate(files):
            with open(os.path.join(content, f"{i:04d}"), "wb") as f:
                f.write(data)
        tool = shutil.which("genisoimage")
        argv = ([tool] if tool else ["xorriso", "-as", "mkisofs"]) + [
            "-o", iso_path, "-V", LABEL, "-J", "-r", "-quiet", staging]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise OSError(f"building the config drive failed: {err.decode(errors='replace')[:300]}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
