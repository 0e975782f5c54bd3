"""`nimbus volume …` and `nimbus server attach-volume/detach-volume/volumes`
against a real stack with a volume manager (file backend)."""

import json

import pytest

from stack import Stack
from test_cli import cli_env, clouds_file, nimbus, ok  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("vcli")), hosts=1,
                     volume_manager=True) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


async def test_volume_commands(nimbus):  # noqa: F811
    made = json.loads(ok(await nimbus("volume", "create", "data", "--size", "1", "--wait",
                                      "-f", "json")).stdout)
    assert made["status"] == "VOLUME_STATUS_AVAILABLE" and made["size_gb"] == 1
    grown = json.loads(ok(await nimbus("volume", "extend", "data", "--size", "2", "--wait",
                                       "-f", "json")).stdout)
    assert grown["size_gb"] == 2
    snap = json.loads(ok(await nimbus("volume", "snapshot", "create", "data", "--wait",
                                      "-f", "json")).stdout)
    assert snap["status"] == "SNAPSHOT_STATUS_AVAILABLE"
    listed = ok(await nimbus("volume", "snapshot", "list", "--volume", "data", "-f", "value",
                             "-c", "id")).stdout
    assert listed.split() == [snap["id"]]
    refused = await nimbus("volume", "delete", "data")
    assert refused.exit_code != 0 and "snapshot" in refused.stderr
    ok(await nimbus("volume", "snapshot", "delete", snap["id"]))

    server = json.loads(ok(await nimbus("server", "create", "vm", "--image", "cirros",
                                        "--flavor", "m1.tiny", "--wait", "-f", "json")).stdout)
    att = json.loads(ok(await nimbus("server", "attach-volume", "vm", "data", "--wait",
                                     "-f", "json")).stdout)
    assert att["device"] == "vdb"
    rows = ok(await nimbus("server", "volumes", "vm", "-f", "value", "-c", "volume_id",
                           "-c", "device")).stdout
    assert rows.splitlines() == [f"{made['id']} vdb"]
    in_use = ok(await nimbus("volume", "show", "data", "-f", "value", "-c", "status")).stdout
    assert in_use.strip() == "IN_USE"
    ok(await nimbus("server", "detach-volume", "vm", "data", "--wait"))
    ok(await nimbus("server", "delete", server["id"], "--wait"))
    deleted = ok(await nimbus("volume", "delete", "data", "--wait"))
    assert "deleted" in deleted.stderr
    assert json.loads(ok(await nimbus("volume", "list", "-f", "json")).stdout) == []
