"""Resize storm: how fast, and at what cost, a whole nimbus stack resizes
and confirms servers.

    .venv/bin/python bench/resize_storm.py [--servers K] [--hosts M] [--concurrency C] [--json PATH]

Starts a fresh stack as separate OS processes (as boot_storm.py does: etcd,
scheduler, conductor, compute API, one agent process simulating M hosts on
the libvirt test driver), boots K m1.tiny servers (not measured), then
resizes all of them to m1.small from C concurrent clients and confirms each
one as soon as it is RESIZED (seen on one WatchServers stream), until every
server is ACTIVE on m1.small. It reports resize+confirm per second, CPU and
etcd writes (write transactions) per resize+confirm for every process, the
time from the ResizeServer call to RESIZED (p50/p99), and checks that the
allocations on every host equal the instances there afterwards."""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot_storm import (USER, BenchStack, Watch, bench_api, create_many,  # noqa: E402
                        etcd_range, etcd_revision, etcd_rpcs, etcd_writes_by_kind, percentile,
                        snapshot, run_on, warm_up)

from nimbus.compute.v1 import compute_pb2 as C  # noqa: E402
from nimbus.etcd import free_port  # noqa: E402
from nimbus.state.v1 import records_pb2  # noqa: E402
from nimbus.store.store import prefix_end  # noqa: E402

OLD, NEW = "m1.tiny", "m1.small"
TIMEOUT = 300.0
TARGETS = {"ops_per_s": (">=", 50.0), "cpu_ms_per_op": ("<=", 30.0),
           "etcd_writes_per_op": ("<=", 10.0)}


class Tracker:
    """One WatchServers stream: when each server was RESIZED, and done (ACTIVE
    on the new flavor, no task); confirms each RESIZED one at once."""

    def __init__(self, api):
        self.api = api
        self.call = api.WatchServers(C.WatchServersRequest(), metadata=USER)
        self.resized_at: dict[str, float] = {}
        self.done_at: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.last: dict[str, C.Server] = {}
        self.confirms: list[asyncio.Task] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.call:
            s = event.server
            if event.type != C.WatchServersResponse.EVENT_TYPE_UPSERT:
                continue
            self.last[s.id] = s
            stamp = time.perf_counter()
            if s.vm_state == C.VM_STATE_RESIZED and s.task_state == 0 and s.id not in self.resized_at:
                self.resized_at[s.id] = stamp
                self.confirms.append(asyncio.create_task(self._confirm(s.id)))
            elif (s.vm_state == C.VM_STATE_ACTIVE and s.task_state == 0 and s.flavor.name == NEW
                  and s.id not in self.done_at):
                self.done_at[s.id] = stamp
            elif s.vm_state == C.VM_STATE_ERROR:
                self.errors[s.id] = s.fault.message
            self.changed.set()

    async def _confirm(self, server_id: str) -> None:
        try:
            await self.api.ConfirmServerResize(C.ConfirmServerResizeRequest(id=server_id),
                                               metadata=USER, timeout=30)
        except grpc.aio.AioRpcError as exc:
            self.errors[server_id] = f"confirm: {exc.code().name} {exc.details()}"
            self.changed.set()

    async def until(self, predicate, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not predicate():
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.perf_counter()))
            except TimeoutError:
                return predicate()
        return True

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, *self.confirms, return_exceptions=True)


def allocations_match_instances(endpoint: str, state_dir: str) -> tuple[bool, dict]:
    """Per host: the allocation consumers in etcd = the instance dirs there
    (a domain per dir on the test driver), and no `_resize` left."""
    prefix = b"/nimbus/allocations/"
    kvs = etcd_range(endpoint, prefix, prefix_end(prefix)).get("kvs", [])
    import base64
    by_host = collections.defaultdict(set)
    for kv in kvs:
        alloc = records_pb2.Allocation.FromString(base64.b64decode(kv["value"]))
        by_host[alloc.host].add(alloc.consumer_id)
    root = os.path.join(state_dir, "sim")
    dirs = {host: {n for n in os.listdir(os.path.join(root, host, "instances"))
                   if len(n) == 36 or n.endswith("_resize")}
            for host in os.listdir(root) if os.path.isdir(os.path.join(root, host, "instances"))}
    hosts = set(by_host) | set(dirs)
    ok = all(by_host.get(h, set()) == dirs.get(h, set()) for h in hosts)
    return ok, {h: (len(by_host.get(h, ())), len(dirs.get(h, ()))) for h in sorted(hosts)}


async def storm(args, stack) -> dict:
    async with grpc.aio.insecure_channel(stack.api) as ch:
        api = await bench_api(stack, ch)
        # Every host registered and warm (image fetched): boot_storm's warm-up.
        watch = Watch(api)
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            await warm_up(api, watch, stack.etcd.endpoint, args.hosts, args.concurrency)
        finally:
            await watch.close()
        tracker = Tracker(api)
        try:
            ids = []
            for start in range(0, args.servers, 50):   # the API takes at most 60 a call
                ids += await create_many(api, [f"rs-{start}"] * min(50, args.servers - start))
            await tracker.until(lambda: all(
                tracker.last.get(i) is not None and tracker.last[i].vm_state == C.VM_STATE_ACTIVE
                for i in ids), TIMEOUT)
            pids = {**stack.pids(), "bench client": os.getpid()}
            endpoint = stack.etcd.endpoint
            rpcs0 = etcd_rpcs(endpoint)
            cpu0, rev0, t0 = snapshot(pids), etcd_revision(endpoint), time.perf_counter()
            called_at: dict[str, float] = {}
            queue = collections.deque(ids)
            call_errors: list[str] = []

            async def client():
                while queue:
                    sid = queue.popleft()
                    called_at[sid] = time.perf_counter()
                    try:
                        await api.ResizeServer(C.ResizeServerRequest(id=sid, flavor_ref=NEW),
                                               metadata=USER, timeout=30)
                    except grpc.aio.AioRpcError as exc:
                        call_errors.append(f"{sid}: {exc.code().name} {exc.details()}")
            await asyncio.gather(*(client() for _ in range(args.concurrency)))
            complete = await tracker.until(
                lambda: all(i in tracker.done_at or i in tracker.errors for i in ids), TIMEOUT)
            t1, cpu1, rev1 = time.perf_counter(), snapshot(pids), etcd_revision(endpoint)
            rpcs1 = etcd_rpcs(endpoint)
            await asyncio.sleep(0.5)   # the sources' clean-up may trail the last ACTIVE
            matched, per_host = allocations_match_instances(endpoint, stack.state_dir)
            writes = await etcd_writes_by_kind(endpoint, rev0, rev1)
        finally:
            await tracker.close()
    n = max(1, len(tracker.done_at))
    wall = t1 - t0
    cpu = {name: (cpu1[name] - cpu0[name]) * 1000 / n for name in pids}
    to_resized = [(tracker.resized_at[i] - called_at[i]) * 1000 for i in ids if i in tracker.resized_at]
    return {
        "servers": len(ids), "done": len(tracker.done_at), "complete": complete,
        "errors": tracker.errors, "call_errors": call_errors,
        "ops_per_s": len(tracker.done_at) / wall if wall > 0 else 0.0,
        "cpu_ms_per_op": sum(v for k, v in cpu.items() if k != "bench client"),
        "cpu_ms_per_op_by_process": cpu,
        "etcd_writes_per_op": (rev1 - rev0) / n, "etcd_writes_by_kind": writes,
        "etcd_rpcs_per_op": {m: (rpcs1[m] - rpcs0[m]) / n for m in sorted(rpcs1)
                             if rpcs1[m] - rpcs0[m]},
        "time_to_resized_p50_ms": percentile(to_resized, 50),
        "time_to_resized_p99_ms": percentile(to_resized, 99),
        "allocations_equal_instances": matched, "allocations_and_instances_per_host": per_host,
    }


def report(r: dict) -> str:
    lines = [f"nimbus resize storm: {r['servers']} x {OLD} -> {NEW}, resized and confirmed",
             "", f"{'metric':32} {'measured':>12} {'target':>10}"]
    for key, (op, target) in TARGETS.items():
        value = r[key]
        ok = value >= target if op == ">=" else value <= target
        lines.append(f"{key:32} {value:12.1f} {op + ' ' + str(target):>10}  {'PASS' if ok else 'MISS'}")
    lines += [f"{'time to RESIZED p50 / p99 (ms)':32} {r['time_to_resized_p50_ms']:6.0f} / "
              f"{r['time_to_resized_p99_ms']:.0f}",
              f"{'done / errors':32} {r['done']} / {len(r['errors'])}",
              f"{'allocations = instances per host':32} {r['allocations_equal_instances']}",
              "CPU ms per resize+confirm: " + ", ".join(
                  f"{k} {v:.1f}" for k, v in r["cpu_ms_per_op_by_process"].items()),
              "etcd requests per resize+confirm (all kinds): " + ", ".join(
                  f"{m} {c:.2f}" for m, c in r["etcd_rpcs_per_op"].items()),
              "etcd write transactions: " + ", ".join(
                  f"{k} {v}" for k, v in list(r["etcd_writes_by_kind"].items())[:12])]
    if r["errors"] or r["call_errors"]:
        lines.append("errors: " + "; ".join([*r["errors"].values(), *r["call_errors"]][:5]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    parser.add_argument("--profile", metavar="DIR",
                        help="run every nimbus process under cProfile, writing DIR/<name>.prof "
                             "(the boot phase included; times and CPU inflated)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = tempfile.mkdtemp(prefix="nimbus-resize-bench-")
    stack = BenchStack(
        os.path.join(tmp, "state"), etcd_port=free_port(), etcd_peer_port=free_port(),
        api=f"127.0.0.1:{free_port()}", conductor=f"127.0.0.1:{free_port()}",
        scheduler=f"127.0.0.1:{free_port()}",
        # Ports of its own (not the defaults): another stack on this machine
        # would hold them, this one's process would die and the other's answer.
        volume=f"127.0.0.1:{free_port()}", database=f"127.0.0.1:{free_port()}",
        agent_args=["--simulate", str(args.hosts), "--host", "bench", "--vcpus", "64",
                    "--memory-mb", "262144", "--disk-gb", "10000"],
        log_dir=os.path.join(tmp, "logs"), quiet=True, profile_dir=args.profile)
    result = run_on(stack, tmp, args.keep, lambda: storm(args, stack))
    if result is None:
        return 130
    print(report(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True, default=str)
    return 0 if result["done"] == result["servers"] and result["allocations_equal_instances"] else 1


if __name__ == "__main__":
    sys.exit(main())
