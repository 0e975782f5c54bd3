"""`make run` (python -m nimbus.devstack) as a user meets it: the banner's
own CreateServer, sent with grpcurl the moment the banner appears, ends
ACTIVE; Ctrl-C stops everything."""

import json
import os
import signal
import subprocess
import sys
import time

from nimbus.etcd import free_port

GRPCURL = os.path.join(os.path.dirname(sys.executable), "grpcurl")
ALICE = "authorization: Bearer alice:demo"


def grpcurl(api: str, method: str, body: dict, service: str = "nimbus.compute.v1.ComputeService") -> dict:
    out = subprocess.run([GRPCURL, "-plaintext", "-H", ALICE, "-d", json.dumps(body), api,
                          f"{service}/{method}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_banner_means_bootable(tmp_path):
    api = f"127.0.0.1:{free_port()}"
    etcd_port = free_port()
    while etcd_port + 1 == free_port():   # devstack takes etcd's peer port as port + 1
        etcd_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nimbus.devstack", "--state-dir", str(tmp_path / "state"),
         "--etcd-port", str(etcd_port), "--api", api,
         "--conductor", f"127.0.0.1:{free_port()}", "--scheduler", f"127.0.0.1:{free_port()}",
         "--metrics-ports", ",".join(str(free_port()) for _ in range(4)),
         "--volume-address", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "NIMBUS_LOG_LEVEL": "warning"})
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            if "nimbus is running" in line:
                break
            assert time.monotonic() < deadline, "no banner"
        else:
            raise AssertionError(f"devstack exited with {proc.wait()} before its banner")
        # The banner's own command, at once.
        created = grpcurl(api, "CreateServer",
                          {"name": "web-1", "image_ref": "cirros", "flavor_ref": "m1.tiny"})
        server_id = created["servers"][0]["id"]
        deadline = time.monotonic() + 30
        while True:
            server = grpcurl(api, "GetServer", {"id": server_id})["server"]
            if "task_state" not in server and server["vm_state"] != "VM_STATE_BUILDING":
                break
            assert time.monotonic() < deadline, server
            time.sleep(0.2)
        assert server["vm_state"] == "VM_STATE_ACTIVE", server
        # make run's shared network `private` gave it an address.
        [address] = server["addresses"]["private"]["addresses"]
        assert address["addr"].startswith("10.0.0.") and address["version"] == 4
        # VolumeService on the API port, its manager on the file backend.
        volume_id = grpcurl(api, "CreateVolume", {"size_gb": 1},
                            "nimbus.volume.v1.VolumeService")["volume"]["id"]
        deadline = time.monotonic() + 30
        while (volume := grpcurl(api, "GetVolume", {"id": volume_id}, "nimbus.volume.v1.VolumeService")
               ["volume"])["status"] == "VOLUME_STATUS_CREATING":
            assert time.monotonic() < deadline, volume
            time.sleep(0.2)
        assert volume["status"] == "VOLUME_STATUS_AVAILABLE", volume
        assert os.path.getsize(tmp_path / "state" / "volumes" / f"volume-{volume_id}") == 1 << 30
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
