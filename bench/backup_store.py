"""Backup store bench: DatabaseService's side of a backup alone, for the
file store and the RADOS store (a throwaway one-OSD in-memory Ceph,
tests/system/ceph.py): write N MB through a part writer in 1 MiB pieces
(what UploadBackup hands it) and commit, read it back (DownloadBackup),
checksum it (the restore check), delete. Wall seconds and this process's
CPU seconds (librados' threads included; the OSD's not) per step.

    .venv/bin/python bench/backup_store.py [--mb 100] [--repeat 5] [--store file|rados|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))

from nimbus.services.database.backupstore import CHUNK, BackupStore, RadosBackupStore  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def one_round(store, megabytes: int, payload: bytes, n: int) -> dict:
    out = {}

    async def step(name, coro):
        t0, c0 = time.monotonic(), cpu()
        result = await coro
        out[name] = (time.monotonic() - t0, cpu() - c0)
        return result

    async def write():
        part = store.open_part(f"bench{n}")
        for _ in range(megabytes):
            await part.write(payload)
        return await part.commit()

    async def read():
        return sum([len(c) async for c in store.read(location)])

    location = await step("write", write())
    assert await step("read", read()) == megabytes * CHUNK
    await step("checksum", store.checksum(location))
    await step("delete", store.delete(location))
    return out


async def bench(kind: str, args, tmp: str) -> dict:
    ceph = None
    if kind == "rados":
        import ceph as ceph_harness
        ceph = ceph_harness.CephCluster(os.path.join(tmp, "ceph")).start()
        ceph.mon_command("osd pool create", pool="backups", pg_num=ceph.pg_num, pgp_num=ceph.pg_num)
        store = RadosBackupStore(ceph.conf_path, "backups")
    else:
        store = BackupStore(os.path.join(tmp, "backups"))
    payload = os.urandom(CHUNK)
    try:
        await one_round(store, 4, payload, -1)   # warm-up: the connection, the pool's PGs
        rounds = [await one_round(store, args.mb, payload, n) for n in range(args.repeat)]
    finally:
        await store.close()
        if ceph is not None:
            ceph.stop()
    result = {}
    for name in rounds[0]:
        walls = [r[name][0] for r in rounds]
        cpus = [r[name][1] for r in rounds]
        result[name] = {"wall_s_median": round(statistics.median(walls), 3),
                        "wall_s_range": [round(min(walls), 3), round(max(walls), 3)],
                        "mb_per_s_median": round(args.mb * CHUNK / 1e6 / statistics.median(walls), 1),
                        "cpu_s_median": round(statistics.median(cpus), 3),
                        "cpu_s_range": [round(min(cpus), 3), round(max(cpus), 3)]}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", choices=("file", "rados", "both"), default="both")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="nimbus-backupbench-")
    try:
        kinds = ("file", "rados") if args.store == "both" else (args.store,)
        result = {kind: asyncio.run(bench(kind, args, tmp)) for kind in kinds}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for kind in kinds:
        for name, r in result[kind].items():
            print(f"{kind:5} {name:8} wall {r['wall_s_median']:.3f} s {r['wall_s_range']} "
                  f"({r['mb_per_s_median']} MB/s)  cpu {r['cpu_s_median']:.3f} s {r['cpu_s_range']}",
                  file=sys.stderr)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
