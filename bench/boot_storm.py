"""Boot storm: how fast, and at what cost, a whole nimbus stack boots servers.

    .venv/bin/python bench/boot_storm.py [--servers K] [--hosts M] [--concurrency C] [--json PATH]

Starts a fresh stack (etcd, scheduler, conductor, compute API and one agent
process simulating M hosts on the libvirt test driver) as separate OS
processes in a temp dir on free ports, seeds flavors and the cirros image,
warms every host up (image fetch and overlay template, excluded from the
measurement), then boots K m1.tiny servers with K CreateServer calls from C
concurrent clients over one channel, following them on one WatchServers
stream. It reports boots/s to ACTIVE, latencies, CPU per boot for every
process, etcd revisions (write transactions) per boot, peak RSS and the host
spread, each against its target, then deletes everything and stops the stack.

`--profile DIR` runs every nimbus process under cProfile (DIR/<name>.prof,
written when the process exits): the numbers are then slower, the
breakdown is what counts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc

from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import compute_pb2_grpc, quotas_pb2, quotas_pb2_grpc
from nimbus.devstack import ADMIN, ProcessStack, seed
from nimbus.etcd import free_port
from nimbus.state.v1 import records_pb2
from nimbus.store.store import Compacted, Store, prefix_end

USER = (("authorization", "Bearer bench:bench"),)
FLAVOR = "m1.tiny"
IMAGE = "cirros"
MAX_PER_CALL = 1000          # servers per warm-up call: the quota (lifted) is the ceiling
BOOT_TIMEOUT = 120.0         # at least; 10,000 servers get K / 20 s (the stall check ends a stuck run)
STALL = 10.0                 # seconds without any watch event: the rest is stuck
CLK_TCK = os.sysconf("SC_CLK_TCK")
Event = C.WatchServersResponse

# metric -> (comparison, target)
TARGETS = {
    "boots_per_s": (">=", 80.0),
    "cpu_ms_per_boot": ("<=", 19.0),
    "time_to_active_p99_ms": ("<=", 1000.0),
    "etcd_writes_per_boot": ("<=", 6.0),
    "spread_max_min": ("<=", 1.2),
}


# ---- the stack ------------------------------------------------------------------

class BenchStack(ProcessStack):
    """ProcessStack, optionally running each nimbus process under cProfile."""

    def __init__(self, *args, profile_dir: str | None = None, **kw):
        super().__init__(*args, **kw)
        self.profile_dir = profile_dir

    def _spawn(self, name: str, *args: str) -> None:
        if not self.profile_dir:
            return super()._spawn(name, *args)
        os.makedirs(self.profile_dir, exist_ok=True)
        os.makedirs(self.log_dir or self.state_dir, exist_ok=True)
        out = open(os.path.join(self.log_dir or self.state_dir, f"{name}.log"), "ab")
        prof = os.path.join(self.profile_dir, f"{name}.prof")
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", prof, "-m", f"nimbus.services.{name}", *args],
            env=self._env(), stdout=out, stderr=out, stdin=subprocess.DEVNULL)


def etcd_range(endpoint: str, key: bytes, range_end: bytes = b"", count_only: bool = False) -> dict:
    """One Range through etcd's HTTP/JSON gateway (no client library needed)."""
    body = {"key": base64.b64encode(key).decode()}
    if range_end:
        body["range_end"] = base64.b64encode(range_end).decode()
    if count_only:
        body["count_only"] = True
    req = urllib.request.Request(f"http://{endpoint}/v3/kv/range", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def etcd_revision(endpoint: str) -> int:
    return int(etcd_range(endpoint, b"a")["header"]["revision"])


def etcd_rpcs(endpoint: str) -> collections.Counter:
    """gRPC calls etcd has started, by method (from its /metrics)."""
    out: collections.Counter = collections.Counter()
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("grpc_server_started_total{"):
                labels, _, value = line.rpartition(" ")
                method = labels.split('grpc_method="', 1)[1].split('"', 1)[0]
                out[method] += int(float(value))
    return out


def etcd_count(endpoint: str, prefix: bytes) -> int:
    return int(etcd_range(endpoint, prefix, prefix_end(prefix), count_only=True).get("count", 0))


async def etcd_writes_by_kind(endpoint: str, first: int, last: int) -> dict[str, int]:
    """Every write transaction (revision) in (first, last], labelled by the
    key kinds it touched: 'instances+actions', 'instances(SPAWNING)', ...
    Read back from etcd's history with a watch from `first + 1`."""
    if last <= first:
        return {}
    store = await Store.connect(endpoint)
    txns: dict[int, set[str]] = collections.defaultdict(set)
    try:
        async with asyncio.timeout(10):
            async for events in store.watch("", first + 1):
                for ev in events:
                    rev = ev.kv.mod_revision
                    if rev > last:
                        continue
                    kind = store.suffix(ev.kv.key).split("/", 1)[0]
                    if ev.type == 1:
                        kind = "-" + kind          # a delete
                    elif kind == "instances":
                        server = records_pb2.InstanceRecord.FromString(ev.kv.value).server
                        state = (C.TaskState.Name(server.task_state) if server.task_state
                                 else C.VmState.Name(server.vm_state))
                        kind = f"instances({state.split('_STATE_')[1]})"
                    txns[rev].add(kind)
                if max(txns, default=0) >= last or events[-1].kv.mod_revision >= last:
                    break
    except (TimeoutError, Compacted):
        pass   # a partial (or no) breakdown; the revision count above stands
    finally:
        await store.close()
    return dict(collections.Counter("+".join(sorted(kinds)) for kinds in txns.values()).most_common())


# ---- /proc ------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of all threads, plus cutime + cstime of reaped children
    (qemu-img runs), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    out = {name: cpu_seconds(pid) for name, pid in pids.items()}
    out["(machine)"] = busy_seconds()
    return out


# ---- the watch -------------------------------------------------------------------------

class Watch:
    """One WatchServers stream: when each server was first seen ACTIVE (and
    where), ERROR (with its fault) and DELETED."""

    def __init__(self, api: compute_pb2_grpc.ComputeServiceStub):
        self.call = api.WatchServers(C.WatchServersRequest(all_projects=False), metadata=USER)
        self.synced = asyncio.Event()
        self.active_at: dict[str, float] = {}
        self.host: dict[str, str] = {}
        self.errors: dict[str, C.Fault] = {}
        self.deleted_at: dict[str, float] = {}
        self.last: dict[str, C.Server] = {}     # as last seen
        self.events = 0
        self.last_event_at = time.perf_counter()
        self._changed = asyncio.Condition()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.call:
            stamp = time.perf_counter()
            self.events += 1
            self.last_event_at = stamp
            server = event.server
            if event.type == Event.EVENT_TYPE_SYNCED:
                self.synced.set()
                continue
            self.last[server.id] = server
            if event.type == Event.EVENT_TYPE_DELETED:
                self.deleted_at.setdefault(server.id, stamp)
            elif server.vm_state == C.VM_STATE_ACTIVE:
                if server.id not in self.active_at:
                    self.active_at[server.id] = stamp
                    self.host[server.id] = server.host
            elif server.vm_state == C.VM_STATE_ERROR and server.task_state == C.TASK_STATE_UNSPECIFIED:
                self.errors[server.id] = server.fault
            async with self._changed:
                self._changed.notify_all()

    async def until(self, predicate, timeout: float, stall: float | None = None) -> bool:
        """Wait until predicate() holds; False after `timeout`, or once no
        event came for `stall` seconds (the rest is stuck: no need to sit
        out the whole timeout)."""
        deadline = time.perf_counter() + timeout
        async with self._changed:
            while not predicate():
                if self.task.done():
                    self.task.result()   # the stream ended: say why
                    raise RuntimeError("WatchServers ended")
                now = time.perf_counter()
                wait = deadline - now
                if stall is not None:
                    wait = min(wait, self.last_event_at + stall - now)
                if wait <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._changed.wait(), wait)
                except TimeoutError:
                    pass
        return True

    def describe(self, server_id: str) -> str:
        s = self.last.get(server_id)
        if s is None:
            return f"{server_id}: never seen on the watch"
        return (f"{server_id}: stuck in {C.VmState.Name(s.vm_state)}/{C.TaskState.Name(s.task_state)}"
                f" on {s.host or '(no host)'}")

    def settled(self, ids) -> bool:
        return all(i in self.active_at or i in self.errors or i in self.deleted_at for i in ids)

    def gone(self, ids) -> bool:
        return all(i in self.deleted_at for i in ids)

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


# ---- phases ------------------------------------------------------------------------------

async def create_many(api, names: list[str]) -> list[str]:
    """Servers in as few calls as the API allows (warm-up only)."""
    ids = []
    for start in range(0, len(names), MAX_PER_CALL):
        count = min(MAX_PER_CALL, len(names) - start)
        resp = await api.CreateServer(C.CreateServerRequest(
            name=names[start] if count == 1 else f"{names[start]}x{count}", image_ref=IMAGE,
            flavor_ref=FLAVOR, min_count=count, max_count=count), metadata=USER, timeout=30)
        ids += [s.id for s in resp.servers]
    return ids


async def delete_all(api, ids, concurrency: int) -> list[str]:
    queue = collections.deque(ids)
    failures = []

    async def worker():
        while queue:
            server_id = queue.popleft()
            try:
                await api.DeleteServer(C.DeleteServerRequest(id=server_id), metadata=USER, timeout=30)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    failures.append(f"{server_id}: {exc.code().name} {exc.details()}")
    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return failures


async def warm_up(api, watch: Watch, endpoint: str, hosts: int, concurrency: int) -> dict:
    """Wait for the hosts to register, then boot and delete servers until
    every host has run one: each host fetches the image and makes its
    overlay template here, not in the measured phase."""
    started = time.perf_counter()
    prefix = b"/nimbus/nodes/"
    deadline = time.monotonic() + 30
    while etcd_count(endpoint, prefix) < hosts:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {etcd_count(endpoint, prefix)} of {hosts} hosts registered in 30 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)   # let the scheduler's and the conductor's informers see them
    covered: set[str] = set()
    stuck: list[str] = []
    rounds = 0
    for rounds in range(1, 6):
        ids = await create_many(api, [f"warmup{rounds}"] * hosts)
        if not await watch.until(lambda: watch.settled(ids), 60, stall=STALL):
            stuck += [watch.describe(i) for i in ids if not watch.settled([i])]
        covered |= {watch.host[i] for i in ids if i in watch.host}
        failed = [i for i in ids if i in watch.errors]
        await delete_all(api, ids, concurrency)
        if not await watch.until(lambda: watch.gone(ids), 60, stall=STALL):
            raise RuntimeError("warm-up servers were not deleted: "
                               + "; ".join(watch.describe(i) for i in ids if i not in watch.deleted_at))
        if len(covered) >= hosts and not failed:
            break
        await asyncio.sleep(0.5)   # hosts still registering ("No valid host"): again
    return {"rounds": rounds, "hosts_warmed": len(covered), "stuck": stuck,
            "seconds": time.perf_counter() - started}


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def measure(args, api, watch: Watch, stack: ProcessStack) -> dict:
    """One measured round: boot K servers, wait for ACTIVE, delete them all."""
    endpoint = stack.etcd.endpoint
    pids = stack.pids()
    pids_all = {**pids, "bench client": os.getpid()}
    rpcs0 = etcd_rpcs(endpoint)
    cpu0, rev0, cpu_t0 = snapshot(pids_all), etcd_revision(endpoint), time.perf_counter()

    # ---- boot: K CreateServer calls from C coroutines ----
    K = args.servers
    next_index = iter(range(K))
    called_at: dict[str, float] = {}
    call_ms: list[float] = []
    call_errors: list[str] = []

    async def client():
        for i in next_index:
            begin = time.perf_counter()
            try:
                resp = await api.CreateServer(C.CreateServerRequest(
                    name=f"bench-{i}", image_ref=IMAGE, flavor_ref=FLAVOR),
                    metadata=USER, timeout=30)
            except grpc.aio.AioRpcError as exc:
                call_errors.append(f"bench-{i}: {exc.code().name} {exc.details()}")
                continue
            call_ms.append((time.perf_counter() - begin) * 1000)
            called_at[resp.servers[0].id] = begin

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    ids = list(called_at)
    complete = await watch.until(
        lambda: all(i in watch.active_at or i in watch.errors for i in ids),
        max(BOOT_TIMEOUT, K / 20),
        stall=STALL)
    t_end = max((watch.active_at[i] for i in ids if i in watch.active_at), default=t0)
    cpu1, rev1, cpu_t1 = snapshot(pids_all), etcd_revision(endpoint), time.perf_counter()
    rpcs1 = etcd_rpcs(endpoint)
    rpcs1["Range"] -= 1   # our own revision read

    active = [i for i in ids if i in watch.active_at]
    # Integrity: an ACTIVE server must still have its instance dir (disk,
    # domain XML) on its host; the agent's destroy removes it.
    sim = os.path.join(stack.state_dir, "sim")
    disks_checked = os.path.isdir(sim)
    lost = [f"{i} on {watch.host[i]}" for i in active if disks_checked and not
            os.path.isdir(os.path.join(sim, watch.host[i], "instances", i))]
    errored = {i: watch.errors[i] for i in ids if i in watch.errors and i not in watch.active_at}
    missing = [watch.describe(i) for i in ids if i not in watch.active_at and i not in errored]

    # ---- delete ----
    d0 = time.perf_counter()
    delete_failures = await delete_all(api, ids, args.concurrency)
    deleted = await watch.until(lambda: watch.gone(ids), max(BOOT_TIMEOUT, K / 20), stall=STALL)
    d_end = max((watch.deleted_at[i] for i in ids if i in watch.deleted_at), default=d0)
    cpu2, rev2 = snapshot(pids_all), etcd_revision(endpoint)
    rss = {name: peak_rss_mb(pid) for name, pid in pids_all.items()}
    writes = await etcd_writes_by_kind(endpoint, rev0, rev1)

    n = max(1, len(ids))   # per server asked for (a stuck one did most of its work too)
    wall = t_end - t0
    tta = [(watch.active_at[i] - called_at[i]) * 1000 for i in active]
    per_host = collections.Counter(watch.host[i] for i in active)
    host_names = [f"{args.host_prefix}-{i:03d}" for i in range(1, args.hosts + 1)]
    counts = [per_host.get(h, 0) for h in host_names]
    boot_cpu = {name: (cpu1[name] - cpu0[name]) * 1000 for name in pids_all}
    # CPU the rest of the machine used meanwhile (other jobs skew the wall times).
    others = (cpu1["(machine)"] - cpu0["(machine)"]) * 1000 - sum(boot_cpu.values())
    wall_ms = (cpu_t1 - cpu_t0) * 1000
    delete_cpu = {name: (cpu2[name] - cpu1[name]) * 1000 for name in pids_all}
    stack_names = list(pids)
    return {
        "booted": len(active), "active_without_disk": lost, "disks_checked": disks_checked,
        "errors": {i: f.message for i, f in errored.items()},
        "missing": missing, "call_errors": call_errors, "complete": complete,
        "boot_wall_s": wall,
        "boots_per_s": len(active) / wall if wall > 0 else 0.0,
        "time_to_active_p50_ms": percentile(tta, 50),
        "time_to_active_p99_ms": percentile(tta, 99),
        "time_to_active_max_ms": max(tta, default=float("nan")),
        "create_call_p50_ms": percentile(call_ms, 50),
        "create_call_p99_ms": percentile(call_ms, 99),
        "cpu_ms_per_boot": sum(boot_cpu[n_] for n_ in stack_names) / n,
        "cpu_ms_per_boot_by_process": {name: boot_cpu[name] / n for name in pids_all},
        "etcd_writes_per_boot": (rev1 - rev0) / n,
        "etcd_revisions_boot": rev1 - rev0,
        "etcd_writes_by_kind": writes,
        "etcd_rpcs_per_boot": {m: (rpcs1[m] - rpcs0[m]) / n for m in sorted(rpcs1)
                               if rpcs1[m] != rpcs0[m]},
        "delete_wall_s": d_end - d0,
        "deletes_per_s": len(ids) / (d_end - d0) if d_end > d0 else 0.0,
        "deleted_all": deleted, "delete_failures": delete_failures,
        "cpu_ms_per_delete": sum(delete_cpu[n_] for n_ in stack_names) / n,
        "cpu_ms_per_delete_by_process": {name: delete_cpu[name] / n for name in pids_all},
        "etcd_writes_per_delete": (rev2 - rev1) / n,
        "peak_rss_mb": rss,
        "other_load_cpus": max(0.0, others / wall_ms) if wall_ms > 0 else 0.0,
        "servers_per_host": dict(zip(host_names, counts)),
        "spread_max_min": (max(counts) / min(counts)) if counts and min(counts) else float("inf"),
    }


def combine(rounds: list[dict]) -> dict:
    """Several rounds as one: the median of every number (per key for
    per-process tables), failures of all rounds together, the last peak RSS."""
    if len(rounds) == 1:
        return dict(rounds[0])
    out = {}
    for key, first in rounds[0].items():
        values = [r[key] for r in rounds]
        if key == "peak_rss_mb":
            out[key] = values[-1]   # high-water marks: the last is the peak
        elif isinstance(first, bool):
            out[key] = all(values)
        elif isinstance(first, (int, float)):
            out[key] = statistics.median(values)
        elif isinstance(first, list):
            out[key] = [item for v in values for item in v]
        elif isinstance(first, dict) and key in ("errors",):
            out[key] = {k: x for v in values for k, x in v.items()}
        elif isinstance(first, dict):
            keys = {k for v in values for k in v}
            out[key] = {k: statistics.median([v.get(k, 0) for v in values]) for k in keys}
            if key in ("etcd_writes_by_kind", "servers_per_host", "cpu_ms_per_boot_by_process",
                       "cpu_ms_per_delete_by_process", "etcd_rpcs_per_boot"):
                order = list(first) + sorted(keys - set(first))
                out[key] = {k: out[key][k] for k in order}
    return out


async def bench_api(stack: ProcessStack, ch) -> compute_pb2_grpc.ComputeServiceStub:
    """Flavors and the image seeded, the bench project's quota lifted (it
    boots far more than Nova's default quotas allow)."""
    await seed(stack.api, stack.state_dir)
    await quotas_pb2_grpc.QuotaServiceStub(ch).UpdateQuotas(quotas_pb2.UpdateQuotasRequest(
        project_id="bench", quota_set=quotas_pb2.QuotaSet(instances=-1, cores=-1, ram=-1)),
        metadata=ADMIN)
    return compute_pb2_grpc.ComputeServiceStub(ch)


async def boot_storm(args, stack: ProcessStack) -> dict:
    async with grpc.aio.insecure_channel(stack.api) as ch:
        api = await bench_api(stack, ch)
        watch = Watch(api)
        try:
            await asyncio.wait_for(watch.synced.wait(), 10)
            warm = await warm_up(api, watch, stack.etcd.endpoint, args.hosts, args.concurrency)
            rounds = [await measure(args, api, watch, stack) for _ in range(args.repeat)]
        finally:
            await watch.close()
    result = {
        "date": datetime.date.today().isoformat(),
        "params": {"servers": args.servers, "hosts": args.hosts, "concurrency": args.concurrency,
                   "repeat": args.repeat, "flavor": FLAVOR, "image": IMAGE,
                   "cpus": os.cpu_count(), "profiled": bool(args.profile)},
        "warm_up": warm,
        **combine(rounds),
    }
    result["verdicts"] = {key: verdict(result[key], *TARGETS[key]) for key in TARGETS}
    if args.repeat > 1:
        result["rounds"] = rounds
    return result


def finite(value):
    """JSON has no inf/nan: null instead."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def verdict(value: float, op: str, target: float) -> str:
    ok = value >= target if op == ">=" else value <= target
    return "PASS" if ok else "MISS"


# ---- report ---------------------------------------------------------------------------

def report(r: dict) -> str:
    p = r["params"]
    v = r["verdicts"]
    out = []
    w = out.append
    rounds = r.get("rounds", [r])
    w(f"nimbus boot storm: {p['servers']} x {p['flavor']} on {p['hosts']} simulated hosts, "
      f"{p['concurrency']} concurrent clients, {p['cpus']} CPUs"
      + (f"; medians of {len(rounds)} rounds" if len(rounds) > 1 else ""))
    if p["profiled"]:
        w("PROFILED under cProfile: times and CPU are inflated; read the .prof files, not these numbers")
    w(f"warm-up: {r['warm_up']['rounds']} round(s), {r['warm_up']['hosts_warmed']} hosts warmed in "
      f"{r['warm_up']['seconds']:.1f} s (image fetch + overlay template: excluded from the numbers)")
    if r["warm_up"]["stuck"]:
        w(f"  warm-up servers that never settled: {'; '.join(r['warm_up']['stuck'])}")
    w("")
    w(f"{'metric':34} {'measured':>12} {'target':>10}  verdict")

    def row(label, key, fmt, unit=""):
        op, target = TARGETS[key]
        w(f"{label:34} {format(r[key], fmt) + unit:>12} {op + ' ' + format(target, 'g') + unit:>10}  "
          f"{v[key]}")
    row("boots/s to ACTIVE", "boots_per_s", ".1f")
    row("CPU per boot (stack processes)", "cpu_ms_per_boot", ".1f", " ms")
    row("time-to-ACTIVE p99", "time_to_active_p99_ms", ".0f", " ms")
    row("etcd writes per boot", "etcd_writes_per_boot", ".2f")
    row("host spread max/min", "spread_max_min", ".2f")
    intact = min(x["booted"] - len(x["active_without_disk"]) for x in rounds)
    label = "servers ACTIVE (and intact)" if r["disks_checked"] else "servers ACTIVE (disks unchecked)"
    w(f"{label:34} {intact:>12} "
      f"{'= ' + str(p['servers']):>10}  {'PASS' if intact == p['servers'] else 'MISS'}")
    w("")
    if len(rounds) > 1:
        for i, x in enumerate(rounds, 1):
            w(f"round {i}: {x['boots_per_s']:6.1f} boots/s  {x['cpu_ms_per_boot']:5.1f} ms CPU/boot  "
              f"p99 {x['time_to_active_p99_ms']:5.0f} ms  {x['etcd_writes_per_boot']:.2f} writes/boot  "
              f"spread {x['spread_max_min']:.2f}  {x['booted']}/{p['servers']} ACTIVE  "
              f"other load {x['other_load_cpus']:.2f} CPUs")
        w("")
    w(f"booted {r['booted']:g}/{p['servers']} ACTIVE in {r['boot_wall_s']:.2f} s "
      f"(first CreateServer call to last ACTIVE seen on the watch)")
    w(f"time-to-ACTIVE   p50 {r['time_to_active_p50_ms']:7.0f} ms   p99 {r['time_to_active_p99_ms']:7.0f} ms"
      f"   max {r['time_to_active_max_ms']:7.0f} ms   (CreateServer call start -> ACTIVE seen)")
    w(f"CreateServer     p50 {r['create_call_p50_ms']:7.1f} ms   p99 {r['create_call_p99_ms']:7.1f} ms")
    w(f"etcd: {r['etcd_revisions_boot']:g} revisions while booting (one per write transaction; "
      f"the delete phase is excluded), per boot:")
    per = max(1, p["servers"])
    w("  " + ", ".join(f"{kind} {count / per:.2f}" for kind, count in r["etcd_writes_by_kind"].items()))
    w("etcd requests per boot (all kinds): "
      + ", ".join(f"{m} {c:.2f}" for m, c in r["etcd_rpcs_per_boot"].items()))
    w("")
    w(f"{'process':14} {'CPU ms/boot':>11} {'CPU ms/delete':>13} {'peak RSS MB':>12}")
    for name, ms in r["cpu_ms_per_boot_by_process"].items():
        label = name if name != "bench client" else "(bench client)"
        w(f"{label:14} {ms:11.2f} {r['cpu_ms_per_delete_by_process'][name]:13.2f} "
          f"{r['peak_rss_mb'][name]:12.1f}")
    w(f"{'stack total':14} {r['cpu_ms_per_boot']:11.2f} {r['cpu_ms_per_delete']:13.2f}   "
      "(the bench client is not in the total)")
    load = r["other_load_cpus"]
    w(f"other load on the machine while booting: {load:.2f} CPUs"
      + ("  (busy machine: wall-clock numbers are pessimistic)" if load > 0.15 else ""))
    w("")
    counts = r["servers_per_host"]
    w("servers per host: " + " ".join(f"{h.rsplit('-', 1)[1]}:{c}" for h, c in counts.items())
      + f"  (max {max(counts.values(), default=0)}, min {min(counts.values(), default=0)})")
    w(f"delete: {p['servers']} servers gone in {r['delete_wall_s']:.2f} s "
      f"({r['deletes_per_s']:.1f}/s, {r['etcd_writes_per_delete']:.2f} etcd writes per delete)"
      + ("" if r["deleted_all"] else "  NOT ALL DELETED"))
    for label, items in (("ACTIVE but their instance dir is gone (domain destroyed)",
                          r["active_without_disk"]),
                         ("CreateServer failures", r["call_errors"]),
                         ("delete failures", r["delete_failures"]),
                         ("never settled", r["missing"])):
        if items:
            w(f"{label}: {len(items)}: " + "; ".join(items[:5]))
    if r["errors"]:
        w(f"ERROR servers: {len(r['errors'])}")
        for sid, msg in list(r["errors"].items())[:10]:
            w(f"  {sid}: {msg}")
    return "\n".join(out)


def run_on(stack: ProcessStack, tmp: str, keep: bool, bench) -> dict | None:
    """Start the stack, run the coroutine bench() makes, stop everything
    (also on Ctrl-C: None then); the temp dir stays when asked or when the
    bench failed (the service logs say why)."""
    try:
        stack.start()
        return asyncio.run(bench())
    except KeyboardInterrupt:
        print("interrupted: stopping the stack", file=sys.stderr)
        return None
    except Exception:
        keep = True
        raise
    finally:
        stack.stop()
        if keep:
            print(f"(temp dir kept, logs in {os.path.join(tmp, 'logs')})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=100, help="servers to boot (K)")
    parser.add_argument("--hosts", type=int, default=10, help="simulated compute hosts (M)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent API clients (C)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure N rounds on the same stack and report the medians")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--stall", type=float, default=STALL, metavar="S",
                        help="seconds without a watch event after which the rest counts as stuck")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    parser.add_argument("--profile", metavar="DIR",
                        help="run every nimbus process under cProfile, writing DIR/<name>.prof")
    args = parser.parse_args(argv)
    globals()["STALL"] = args.stall   # the phases read the module's STALL
    if min(args.servers, args.hosts, args.concurrency, args.repeat) < 1:
        parser.error("--servers, --hosts, --concurrency and --repeat must be at least 1")
    args.host_prefix = "bench"

    # Stop cleanly (the finally below) on SIGTERM too, and on SIGINT even
    # when started in the background (where SIGINT comes ignored).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = tempfile.mkdtemp(prefix="nimbus-bench-")
    stack = BenchStack(
        os.path.join(tmp, "state"), etcd_port=free_port(), etcd_peer_port=free_port(),
        api=f"127.0.0.1:{free_port()}", conductor=f"127.0.0.1:{free_port()}",
        scheduler=f"127.0.0.1:{free_port()}", database=None,
        # Its own port, as every other process: on the default one a second
        # stack's volume manager could not listen and the first's answered.
        volume=f"127.0.0.1:{free_port()}",
        agent_args=["--simulate", str(args.hosts), "--host", args.host_prefix, "--vcpus", "64",
                    "--memory-mb", "262144", "--disk-gb", "10000"],
        log_dir=os.path.join(tmp, "logs"), quiet=True,
        profile_dir=os.path.abspath(args.profile) if args.profile else None)
    result = run_on(stack, tmp, args.keep, lambda: boot_storm(args, stack))
    if result is None:
        return 130
    print(report(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(finite(result), f, indent=2, sort_keys=True, default=str)
    rounds = result.get("rounds", [result])
    return 0 if all(r["booted"] == args.servers and r["deleted_all"] and not r["active_without_disk"]
                    for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
