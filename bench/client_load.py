"""Client load: many concurrent API users for a while, on the whole stack.

    .venv/bin/python bench/client_load.py [--clients 200] [--seconds 60] [--hosts 4]

Starts a fresh stack (etcd, scheduler, conductor, compute API, one agent
simulating M hosts) as separate OS processes on free ports, then runs C
clients for S seconds, each in one of 20 projects (quotas lifted), each
looping over a mix: CreateServer (while it holds fewer than 2 servers),
GetServer and ListServers of its own, DeleteServer of its oldest. It
reports per-RPC p50/p99 and status codes, the conductor's per-RPC p99 (from
its access log), the oldest task age seen (sampled every second from etcd),
then deletes everything and checks that nothing leaked: no instance,
allocation or action left, every usage back to zero, etcd alive.
Only NOT_FOUND is an expected error (a Get racing a Delete).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import time

import grpc

from boot_storm import BenchStack, etcd_count, percentile, snapshot
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import compute_pb2_grpc, quotas_pb2, quotas_pb2_grpc
from nimbus.devstack import ADMIN, seed
from nimbus.etcd import free_port
from nimbus.state.v1 import records_pb2
from nimbus.store.store import Store

PROJECTS = 20
HELD = 2                     # servers a client holds at most
TARGETS = {"oldest_task_s": ("<", 30.0)}


class LoadStack(BenchStack):
    """JSON logs; the conductor logs every call (its agents' calls are at debug)."""

    def _spawn(self, name: str, *args: str) -> None:
        self._spawning = name
        super()._spawn(name, *args)

    def _env(self) -> dict:
        env = super()._env()
        env["NIMBUS_LOG_FORMAT"] = "json"
        env["NIMBUS_LOG_LEVEL"] = "debug" if getattr(self, "_spawning", "") == "conductor" \
            else "warning"
        return env


class Client:
    def __init__(self, index: int, api, calls: collections.defaultdict):
        self.project = f"load-{index % PROJECTS}"
        self.who = (("authorization", f"Bearer u{index}:{self.project}"),)
        self.api = api
        self.calls = calls
        self.mine: list[str] = []

    async def call(self, method: str, request):
        started = time.perf_counter()
        code = "OK"
        try:
            return await getattr(self.api, method)(request, metadata=self.who, timeout=30)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            return None
        finally:
            self.calls[method].append(((time.perf_counter() - started) * 1000, code))

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            roll = random.random()
            if len(self.mine) < HELD and (roll < 0.4 or not self.mine):
                resp = await self.call("CreateServer", C.CreateServerRequest(
                    name="load", image_ref="cirros", flavor_ref="m1.tiny"))
                if resp is not None:
                    self.mine += [s.id for s in resp.servers]
            elif roll < 0.55:
                await self.call("GetServer", C.GetServerRequest(id=random.choice(self.mine)))
            elif roll < 0.75:
                await self.call("ListServers", C.ListServersRequest())
            else:
                await self.call("DeleteServer", C.DeleteServerRequest(id=self.mine.pop(0)))


async def oldest_task_sampler(store: Store, out: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        items, _ = await store.list("instances/", records_pb2.InstanceRecord)
        now = time.time()
        ages = [now - rec.msg.task_changed_at.ToNanoseconds() / 1e9 for _, rec in items
                if rec.msg.server.task_state]
        out.append(max(ages, default=0.0))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


def conductor_p99(log_path: str, since: float) -> dict[str, tuple[int, float, float]]:
    per: dict[str, list[float]] = collections.defaultdict(list)
    with open(log_path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "rpc" and "ms" in entry:
                per[entry["method"].rsplit("/", 1)[-1]].append(entry["ms"])
    return {m: (len(v), percentile(v, 50), percentile(v, 99), max(v)) for m, v in sorted(per.items())}


async def load(args, stack: LoadStack) -> dict:
    await seed(stack.api, stack.state_dir)
    store = await Store.connect(stack.etcd.endpoint)
    channels = [grpc.aio.insecure_channel(stack.api) for _ in range(4)]
    try:
        quotas = quotas_pb2_grpc.QuotaServiceStub(channels[0])
        for p in range(PROJECTS):
            await quotas.UpdateQuotas(quotas_pb2.UpdateQuotasRequest(
                project_id=f"load-{p}", quota_set=quotas_pb2.QuotaSet(
                    instances=-1, cores=-1, ram=-1)), metadata=ADMIN)
        calls: collections.defaultdict = collections.defaultdict(list)
        clients = [Client(i, compute_pb2_grpc.ComputeServiceStub(channels[i % 4]), calls)
                   for i in range(args.clients)]
        ages: list[float] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(oldest_task_sampler(store, ages, stop))
        before = snapshot(stack.pids())
        started = time.monotonic()
        await asyncio.gather(*(c.run(started + args.seconds) for c in clients))
        elapsed = time.monotonic() - started
        after = snapshot(stack.pids())
        # Settle, then delete what is left and wait for it to be gone.
        admin = compute_pb2_grpc.ComputeServiceStub(channels[0])
        left = [i for c in clients for i in c.mine]
        await asyncio.gather(*(c.call("DeleteServer", C.DeleteServerRequest(id=i))
                               for c in clients for i in c.mine))
        deadline = time.monotonic() + 120
        while (await admin.ListServers(C.ListServersRequest(all_projects=True),
                                       metadata=ADMIN)).servers and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await sampler
        usages, _ = await store.list("usages/", quotas_pb2.QuotaUsage)
        leaked = {
            "instances": etcd_count(stack.etcd.endpoint, b"/nimbus/instances/"),
            "allocations": etcd_count(stack.etcd.endpoint, b"/nimbus/allocations/"),
            "actions": etcd_count(stack.etcd.endpoint, b"/nimbus/actions/"),
            "usage_not_zero": sum(1 for _, u in usages
                                  if u.msg.instances or u.msg.cores or u.msg.ram),
            "etcd_alive": stack.etcd.process.poll() is None}
        return {"calls": calls, "elapsed": elapsed, "left_at_end": len(left), "ages": ages,
                "leaked": leaked, "cpu": {k: after[k] - before[k] for k in after},
                "conductor": conductor_p99(os.path.join(stack.state_dir, "conductor.log"), 0)}
    finally:
        for ch in channels:
            await ch.close()
        await store.close()


def report(r: dict, args) -> tuple[str, bool]:
    lines = [f"{args.clients} clients for {r['elapsed']:.0f} s on {args.hosts} simulated hosts", "",
             "| RPC | calls | p50 ms | p99 ms | codes |", "|---|---|---|---|---|"]
    unexpected = 0
    for method, samples in sorted(r["calls"].items()):
        ms = [s[0] for s in samples]
        codes = collections.Counter(s[1] for s in samples)
        unexpected += sum(n for c, n in codes.items() if c not in ("OK", "NOT_FOUND"))
        lines.append(f"| {method} | {len(samples)} | {percentile(ms, 50):.1f} | "
                     f"{percentile(ms, 99):.1f} | {dict(codes)} |")
    lines += ["", "conductor, per RPC (its access log):", "",
              "| RPC | calls | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {n} | {p50:.1f} | {p99:.1f} | {top:.1f} |"
              for m, (n, p50, p99, top) in r["conductor"].items()]
    oldest = max(r["ages"], default=0.0)
    cpu = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(r["cpu"].items()))
    ok = unexpected == 0 and oldest < TARGETS["oldest_task_s"][1] and not any(
        v for k, v in r["leaked"].items() if k != "etcd_alive") and r["leaked"]["etcd_alive"]
    lines += ["", f"oldest task age: {oldest:.1f} s (target < 30 s)",
              f"errors other than NOT_FOUND: {unexpected}",
              f"leaked after deleting everything: {r['leaked']}",
              f"CPU during the load: {cpu}", "", "PASS" if ok else "FAIL"]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="nimbus-load-")
    stack = LoadStack(tmp, etcd_port=free_port(), etcd_peer_port=free_port(),
                      api=f"127.0.0.1:{free_port()}", conductor=f"127.0.0.1:{free_port()}",
                      scheduler=f"127.0.0.1:{free_port()}", quiet=True,
                      # Ports of their own (a second stack on the machine must not answer).
                      database=None, volume=f"127.0.0.1:{free_port()}",
                      agent_args=["--simulate", str(args.hosts), "--host", "load"])
    try:
        stack.start()
        text, ok = report(asyncio.run(load(args, stack)), args)
        print(text)
        return 0 if ok else 1
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
