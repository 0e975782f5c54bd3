"""Prometheus metrics: every process of a real stack serves /metrics, the
counters move when a server boots, and the controllers' queued keys and
retries move when their work fails for real (the volume directory gone,
the compute API killed) and settle when it comes back."""

import asyncio
import os
import shutil
import time
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from nimbus.compute.v1 import compute_pb2_grpc
from nimbus.database.v1 import database_pb2 as D, database_pb2_grpc
from nimbus.dbseed import seed_datastores
from nimbus.devstack import ProcessStack, seed
from nimbus.etcd import free_port
from nimbus.volume.v1 import volume_pb2 as V, volume_pb2_grpc
from stack import ADMIN, C, user


def scrape(address: str) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


def until(check, timeout: float = 30, what: str = ""):
    """Poll `check` (a scrape or a read) until it returns something true."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return got


def test_each_process_serves_metrics_that_move_on_a_boot(tmp_path):
    names = ("compute", "conductor", "scheduler", "agent", "volume", "database")
    stack = ProcessStack(str(tmp_path), etcd_port=free_port(), etcd_peer_port=free_port(),
                         api=f"127.0.0.1:{free_port()}", conductor=f"127.0.0.1:{free_port()}",
                         scheduler=f"127.0.0.1:{free_port()}", agent_args=["--simulate", "2"],
                         database=f"127.0.0.1:{free_port()}", volume=f"127.0.0.1:{free_port()}",
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
        # Every controller reports its queue, idle now.
        for process, controller in (("conductor", "builds"), ("conductor", "moves"),
                                    ("agent", "agent"), ("volume", "volume-manager-file"),
                                    ("database", "taskmanager"), ("database", "backups")):
            assert ("nimbus_controller_queued_keys", (("controller", controller),)) \
                in after[process], (process, controller)
            assert value(after[process], "nimbus_controller_queued_keys",
                         controller=controller) == 0, (process, controller)
        _volume_manager_retries(stack)
        _task_manager_retries(stack)
    finally:
        stack.stop()


def _controller(stack, process, controller):
    samples = scrape(stack.metrics[process])
    return (value(samples, "nimbus_controller_queued_keys", controller=controller),
            value(samples, "nimbus_controller_retries_total", controller=controller))


def _queued_and_retried(stack, process, controller, retries) -> bool:
    queued, retried = _controller(stack, process, controller)
    return queued >= 1 and retried >= retries


def _volume_manager_retries(stack):
    """The file backend's directory is gone (a lost disk): a create fails
    and is retried, queued, until the directory is back."""
    root = os.path.join(stack.state_dir, "volumes")
    shutil.rmtree(root)
    with grpc.insecure_channel(stack.api) as ch:
        volumes = volume_pb2_grpc.VolumeServiceStub(ch)
        volume = volumes.CreateVolume(V.CreateVolumeRequest(name="v", size_gb=1),
                                      metadata=user()).volume
        until(lambda: _queued_and_retried(stack, "volume", "volume-manager-file", 1),
              what="the volume manager retried its create")
        os.makedirs(root)
        until(lambda: volumes.GetVolume(V.GetVolumeRequest(id=volume.id), metadata=user())
              .volume.status == V.VOLUME_STATUS_AVAILABLE, what="the volume became available")
    until(lambda: _controller(stack, "volume", "volume-manager-file")[0] == 0,
          what="nothing left queued")


def _task_manager_retries(stack):
    """The compute API is killed while a database instance is deleted: the
    task manager's calls fail and are retried until it is back."""
    asyncio.run(seed_datastores(stack.database, "cirros", ADMIN))
    with grpc.insecure_channel(stack.api) as ch:
        compute_pb2_grpc.ComputeServiceStub(ch).CreateFlavor(C.CreateFlavorRequest(
            flavor=C.Flavor(name="m1.huge", vcpus=1, ram_mb=512, disk_gb=100000)), metadata=ADMIN)
    with grpc.insecure_channel(stack.database) as ch:
        db = database_pb2_grpc.DatabaseServiceStub(ch)
        inst = db.CreateInstance(D.CreateInstanceRequest(   # no host holds it: fails at once
            name="db", flavor_ref="m1.huge", datastore=D.DatastoreRef(type="postgresql"),
            volume=D.VolumeSpec(size_gb=1)), metadata=user()).instance
        until(lambda: db.GetInstance(D.GetInstanceRequest(id=inst.id), metadata=user())
              .instance.task_status == D.TASK_STATUS_BUILDING_ERROR_SERVER,
              what="the build failed")
        compute = stack.children["compute"]
        compute.kill()
        compute.wait()
        _, retries = _controller(stack, "database", "taskmanager")
        db.DeleteInstance(D.DeleteInstanceRequest(id=inst.id), metadata=user())
        until(lambda: _queued_and_retried(stack, "database", "taskmanager", retries + 1),
              what="the task manager retried the delete")
        stack._spawn("compute", "--listen", stack.api, "--noauth")
        stack.wait_serving("compute", stack.api)

        def gone():
            try:
                db.GetInstance(D.GetInstanceRequest(id=inst.id), metadata=user())
                return False
            except grpc.RpcError as err:
                return err.code() == grpc.StatusCode.NOT_FOUND
        until(gone, timeout=60, what="the delete finished once the API was back")
    until(lambda: _controller(stack, "database", "taskmanager")[0] == 0,
          what="nothing left queued")
