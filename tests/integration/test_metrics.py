"""Prometheus metrics: every process of a real stack serves /metrics, and the
counters move when a server boots."""

import asyncio
import time
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.devstack import ProcessStack, seed
from nimbus.etcd import free_port
from stack import C, user


def scrape(address: str) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


def test_each_process_serves_metrics_that_move_on_a_boot(tmp_path):
    names = ("compute", "conductor", "scheduler", "agent")
    stack = ProcessStack(str(tmp_path), etcd_port=free_port(), etcd_peer_port=free_port(),
                         api=f"127.0.0.1:{free_port()}", conductor=f"127.0.0.1:{free_port()}",
                         scheduler=f"127.0.0.1:{free_port()}", agent_args=["--simulate", "2"],
                         quiet=True, metrics={n: f"127.0.0.1:{free_port()}" for n in names})
    try:
        stack.start()
        asyncio.run(seed(stack.api, stack.state_dir))
        deadline = time.monotonic() + 20
        while True:   # the agent serves once it started
            try:
                before = {n: scrape(stack.metrics[n]) for n in names}
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with grpc.insecure_channel(stack.api) as ch:
            api = compute_pb2_grpc.ComputeServiceStub(ch)
            server = api.CreateServer(C.CreateServerRequest(
                name="m", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user()).servers[0]
            deadline = time.monotonic() + 30
            while api.GetServer(C.GetServerRequest(id=server.id), metadata=user()).server.vm_state \
                    != C.VM_STATE_ACTIVE:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        after = {n: scrape(stack.metrics[n]) for n in names}

        def moved(process, name, **labels):
            return value(after[process], name, **labels) - value(before[process], name, **labels)

        assert moved("compute", "nimbus_rpc_requests_total", method="CreateServer", code="OK") == 1
        assert moved("conductor", "nimbus_builds_total", outcome="active") == 1
        assert moved("conductor", "nimbus_time_to_active_seconds_count") == 1
        assert moved("conductor", "nimbus_rpc_requests_total", method="UpdateInstance") >= 3
        assert moved("scheduler", "nimbus_rpc_requests_total", method="SelectDestinations") >= 1
        assert moved("compute", "nimbus_etcd_transactions_total", outcome="succeeded") >= 1
        assert value(after["conductor"], "nimbus_host_allocated", resource="servers") == 1
        assert value(after["agent"], "nimbus_host_domains", state="active") == 1
        assert value(after["compute"], "nimbus_watch_relists_total") >= 1
        assert value(after["compute"], "nimbus_rpc_duration_seconds_count",
                     method="CreateServer") >= 1
    finally:
        stack.stop()
