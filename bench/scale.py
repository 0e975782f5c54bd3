"""SelectDestinations at scale: placements per second and latency of the real
scheduler process over 1,000 and 10,000 hosts.

    .venv/bin/python bench/scale.py [--hosts 1000,10000] [--seconds 10] [--concurrency 8]
                                    [--batch 1] [--profile DIR] [--json PATH]

For each host count: a fresh etcd (Debian's 3.4.23) in a temp dir on free
ports, that many NodeRecords (32 vCPUs, 64 GB, 1 TB each) written straight
into it, the scheduler started as its own OS process (`python -m
nimbus.services.scheduler`, optionally under cProfile) and waited for until
SERVING; then C concurrent callers send SelectDestinations (m1.tiny specs,
`--batch` per call, one alternate) for S seconds. Reports placements/s,
per-call p50/p99, scheduler CPU per placement, its peak RSS, and the cores
the scheduler, this client and everything else on the machine used
meanwhile (the client shares the machine); with `--profile`,
the top of the scheduler's profile. Nothing is claimed (the scheduler
never writes): its own 10 s assumptions fill the hosts a little.

Targets (issue 13): >= 1,000 placements/s and p99 <= 5 ms at 1,000 hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pstats
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nimbus.etcd import EmbeddedEtcd, free_port
from nimbus.rpc import auth
from nimbus.scheduler.v1 import scheduler_pb2 as S, scheduler_pb2_grpc
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store

from boot_storm import busy_seconds, cpu_seconds, peak_rss_mb, percentile  # noqa: E402 (bench/ is the script's dir)

TINY = records_pb2.Resources(vcpus=1, memory_mb=512, disk_gb=1)


async def seed_nodes(endpoint: str, hosts: int) -> None:
    store = await Store.connect(endpoint)
    try:
        node = records_pb2.NodeRecord(
            hypervisor_type="test", total=records_pb2.Resources(vcpus=32, memory_mb=65536, disk_gb=1000),
            cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0)
        for start in range(0, hosts, 100):
            ops = []
            for i in range(start, min(hosts, start + 100)):
                node.host = f"sim-{i:05d}"
                ops.append(store.put(keys.node(node.host), node))
            await store.txn([], ops)
    finally:
        await store.close()


async def wait_serving(address: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    async with grpc.aio.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"scheduler exited {proc.returncode}")
            try:
                if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("scheduler never SERVING")


async def one_size(hosts: int, args, workdir: str) -> dict:
    etcd = EmbeddedEtcd(os.path.join(workdir, f"etcd-{hosts}"),
                        log_file=os.path.join(workdir, f"etcd-{hosts}.log")).start()
    address = f"127.0.0.1:{free_port()}"
    token = secrets.token_hex(16)
    env = dict(os.environ, NIMBUS_ETCD_ENDPOINT=etcd.endpoint, NIMBUS_LISTEN=address,
               NIMBUS_SERVICE_TOKEN=token, NIMBUS_LOG_LEVEL="warning")
    prof = os.path.join(args.profile, f"scheduler-{hosts}.prof") if args.profile else ""
    argv = [sys.executable] + (["-m", "cProfile", "-o", prof] if prof else []) + \
        ["-m", "nimbus.services.scheduler"]
    proc = None
    try:
        t0 = time.perf_counter()
        await seed_nodes(etcd.endpoint, hosts)
        seeded = time.perf_counter() - t0
        with open(os.path.join(workdir, f"scheduler-{hosts}.log"), "ab") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        t1 = time.perf_counter()
        await wait_serving(address, proc)
        ready = time.perf_counter() - t1
        metadata = auth.service_metadata(token)
        latencies: list[float] = []
        placed = 0
        async with grpc.aio.insecure_channel(address) as ch:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(ch)
            request = lambda: S.SelectDestinationsRequest(num_alternates=1, specs=[  # noqa: E731
                S.RequestSpec(instance_id=str(uuid.uuid4()), project_id="bench", resources=TINY)
                for _ in range(args.batch)])
            await stub.SelectDestinations(request(), metadata=metadata)   # warm
            cpu0, start = cpu_seconds(proc.pid), time.perf_counter()
            client0, busy0 = cpu_seconds(os.getpid()), busy_seconds()
            end = start + args.seconds

            async def caller():
                nonlocal placed
                while time.perf_counter() < end:
                    begin = time.perf_counter()
                    resp = await stub.SelectDestinations(request(), metadata=metadata, timeout=30)
                    latencies.append((time.perf_counter() - begin) * 1000)
                    placed += sum(1 for s in resp.selections if s.hosts)
            await asyncio.gather(*(caller() for _ in range(args.concurrency)))
            wall = time.perf_counter() - start
            cpu = cpu_seconds(proc.pid) - cpu0
            client = cpu_seconds(os.getpid()) - client0
            others = busy_seconds() - busy0 - cpu - client
        result = {
            "hosts": hosts, "placements_per_s": placed / wall, "calls": len(latencies),
            "batch": args.batch, "concurrency": args.concurrency,
            "call_p50_ms": percentile(latencies, 50), "call_p99_ms": percentile(latencies, 99),
            "scheduler_cpu_ms_per_placement": cpu * 1000 / max(1, placed),
            "scheduler_cores": cpu / wall, "client_cores": client / wall,
            "other_cores": others / wall,
            "scheduler_rss_mb": peak_rss_mb(proc.pid), "seed_s": seeded, "ready_s": ready,
        }
        return result
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        etcd.stop()


def top_of_profile(path: str, lines: int = 18) -> str:
    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("tottime").print_stats(lines)
    return out.getvalue()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", default="1000,10000", help="comma-separated host counts")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, help="specs per SelectDestinations call")
    parser.add_argument("--profile", metavar="DIR", help="run the scheduler under cProfile")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="nimbus-scale-")
    results = []
    try:
        for hosts in (int(h) for h in args.hosts.split(",")):
            r = await one_size(hosts, args, workdir)
            results.append(r)
            verdict = ""
            if hosts == 1000:
                ok = r["placements_per_s"] >= 1000 and r["call_p99_ms"] <= 5
                verdict = "  targets (>= 1,000/s, p99 <= 5 ms): " + ("PASS" if ok else "MISS")
            print(f"{hosts:>6} hosts: {r['placements_per_s']:8.1f} placements/s, call p50 "
                  f"{r['call_p50_ms']:.1f} ms p99 {r['call_p99_ms']:.1f} ms "
                  f"({r['calls']} calls of {args.batch}, {args.concurrency} callers), scheduler "
                  f"{r['scheduler_cpu_ms_per_placement']:.2f} ms CPU/placement, RSS "
                  f"{r['scheduler_rss_mb']:.0f} MB, ready in {r['ready_s']:.1f} s; cores used: "
                  f"scheduler {r['scheduler_cores']:.2f}, bench client {r['client_cores']:.2f}, "
                  f"other processes {r['other_cores']:.2f}{verdict}",
                  flush=True)
            if args.profile:
                print(top_of_profile(os.path.join(args.profile, f"scheduler-{hosts}.prof")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
