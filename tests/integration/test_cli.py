"""The `nimbus` CLI against a real stack (etcd, gRPC on loopback, the
libvirt test driver): through click's CliRunner in a worker thread (the
stack's event loop keeps serving meanwhile), and as the installed console
script in a process of its own."""

import asyncio
import dataclasses
import json
import os
import sys
import uuid

import pytest
import yaml
from click.testing import CliRunner

from nimbus.cli.main import cli
from nimbus.database.v1 import database_pb2 as D
from nimbus.etcd import free_port
from stack import Stack, user

ADMIN_TOKEN = "admin:admin"
CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "nimbus")


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("stack")), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.flavor("m1.wide", vcpus=3)
        await s.image(qcow2_image)
        yield s


@pytest.fixture
def clouds_file(tmp_path):
    """An empty clouds file of the test's own (never the user's)."""
    path = tmp_path / "clouds.yaml"
    path.write_text("clouds: {}\n")
    return path


def cli_env(clouds_file, **given: str) -> dict:
    """Every NIMBUS_* setting unset but those given; the test's own clouds file."""
    unset = {f"NIMBUS_{name}": None for name in ("API", "TOKEN", "CACERT", "CLOUD")}
    return unset | {"NIMBUS_CLOUDS_FILE": str(clouds_file)} | given


@dataclasses.dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


async def console_script(argv: list[str], env: dict) -> Ran:
    """The installed `nimbus` in a process of its own."""
    environ = {k: v for k, v in (dict(os.environ) | env).items() if v is not None}
    proc = await asyncio.create_subprocess_exec(CONSOLE_SCRIPT, *argv, env=environ,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return Ran(proc.returncode, out.decode(), err.decode())


async def cli_runner(argv: list[str], env: dict) -> Ran:
    """click's CliRunner in a worker thread (the stack's loop keeps serving)."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, argv, env=env, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def nimbus(stack, clouds_file):
    """Run `nimbus ARGS` as a fresh project's user (or with the token given),
    in-process, or with via=console_script as the installed command."""
    project = f"cli-{uuid.uuid4().hex[:8]}"

    async def run(*args: str, token: str | None = f"alice:{project}", via=cli_runner):
        argv = ["--api", stack.cfg.api_address] + (["--token", token] if token else []) + list(args)
        return await via(argv, cli_env(clouds_file))
    run.project = project
    return run


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


async def test_create_wait_to_active_then_list_show_delete(nimbus):
    created = json.loads(ok(await nimbus("server", "create", "web", "--image", "cirros",
                                         "--flavor", "m1.tiny", "--wait", "-f", "json")).stdout)
    assert (created["vm_state"], created["task_state"]) == ("VM_STATE_ACTIVE", "TASK_STATE_UNSPECIFIED")
    assert created["host"] and created["name"] == "web"

    listed = ok(await nimbus("server", "list", "-f", "value", "-c", "id", "-c", "vm_state")).stdout
    assert listed.splitlines() == [f"{created['id']} ACTIVE"]
    shown = ok(await nimbus("server", "show", "web", "-f", "value", "-c", "id", "-c", "power_state"))
    assert shown.stdout.splitlines() == [created["id"], "RUNNING"]
    assert "web" in ok(await nimbus("server", "list")).stdout   # the table
    picked = json.loads(ok(await nimbus("server", "list", "-f", "json", "-c", "id", "-c", "host")).stdout)
    assert picked == [{"id": created["id"], "host": created["host"]}]
    bad = await nimbus("server", "list", "-c", "nope")
    assert bad.exit_code == 2 and "no column nope" in bad.stderr

    deleted = ok(await nimbus("server", "delete", created["id"], "--wait"))
    assert "deleted" in deleted.stderr
    assert json.loads(ok(await nimbus("server", "list", "-f", "json")).stdout) == []


@pytest.mark.parametrize("via", [cli_runner, console_script])
async def test_wait_shows_the_build_steps_in_order(nimbus, via):
    result = ok(await nimbus("server", "create", "steps", "--image", "cirros", "--flavor", "m1.tiny",
                             "--wait", "-f", "value", "-c", "vm_state", via=via))
    assert result.stdout == "ACTIVE\n"
    states = [line.removeprefix("steps: ") for line in result.stderr.splitlines()]
    order = ["BUILDING/SCHEDULING", "BUILDING/NETWORKING", "BUILDING/BLOCK_DEVICE_MAPPING",
             "BUILDING/SPAWNING", "ACTIVE"]
    assert states[0] == order[0] and states[-1] == "ACTIVE", states
    assert states == sorted(states, key=order.index), states   # never backwards


@pytest.mark.parametrize("via", [cli_runner, console_script])
async def test_wait_on_a_boot_no_host_can_hold_prints_the_fault(nimbus, via):
    huge = f"huge-{uuid.uuid4().hex[:6]}"
    ok(await nimbus("flavor", "create", huge, "--vcpus", "1", "--ram", "512", "--disk", "100000",
                    token=ADMIN_TOKEN))
    result = await nimbus("server", "create", "big", "--image", "cirros", "--flavor", huge, "--wait",
                          via=via)
    assert result.exit_code == 11, (result.stdout, result.stderr)
    assert "is ERROR: No valid host was found" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args, token, code, words", [
    (("server", "create", "x", "--image", "cirros", "--flavor", "nope"), "user", 4,
     "flavor 'nope' not found (NOT_FOUND)"),
    (("server", "create", " ", "--image", "cirros", "--flavor", "m1.tiny"), "user", 3,
     "Error: name: "),
    (("server", "create", "x", "--image", "cirros", "--flavor", "m1.tiny", "--min", "11"), "user", 8,
     "Quota exceeded for instances"),
    (("server", "create", "x", "--image", "cirros", "--flavor", "m1.wide", "--min", "11"), "user", 8,
     "Error: 2 problems (RESOURCE_EXHAUSTED):\n  - Quota exceeded for instances: Requested 11, "
     "but the limit is 10\n  - Quota exceeded for cores: Requested 33, but the limit is 20"),
    (("server", "show", "no-such-server"), "user", 4, "(NOT_FOUND)"),
    (("flavor", "create", "f", "--vcpus", "1", "--ram", "64"), "user", 7, "(PERMISSION_DENIED)"),
    (("server", "list"), None, 2, "no token"),
    (("server", "list"), "nobody", 6, "(UNAUTHENTICATED)"),
    (("server", "list", "-f", "xml"), "user", 2, "Invalid value for '-f'"),
    (("--cacert", "/nonexistent/ca.pem", "server", "list"), "user", 2,
     "cannot read the CA certificate /nonexistent/ca.pem"),
])
async def test_errors_in_plain_words_and_exit_code_by_status(nimbus, args, token, code, words):
    result = await nimbus(*args, **({} if token == "user" else {"token": token}))
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert words in result.stderr
    assert "Traceback" not in result.stderr


async def test_an_unreachable_api_is_unavailable(nimbus):
    result = await nimbus("--api", f"127.0.0.1:{free_port()}", "--timeout", "5", "server", "list")
    assert result.exit_code == 10, result.stderr
    assert "is unavailable" in result.stderr and "(UNAVAILABLE)" in result.stderr


async def test_image_create_uploads_a_file(nimbus, tmp_path, qcow2_image):
    name = f"img-{uuid.uuid4().hex[:6]}"
    made = json.loads(ok(await nimbus("image", "create", qcow2_image, "--name", name,
                                      "--property", "os=cirros", "-f", "json")).stdout)
    assert made["status"] == "IMAGE_STATUS_ACTIVE" and made["disk_format"] == "qcow2"
    assert made["visibility"] == "private"   # a member's upload is the project's
    assert int(made["size"]) == os.path.getsize(qcow2_image) and made["properties"] == {"os": "cirros"}
    assert name in ok(await nimbus("image", "list", "-f", "value", "-c", "name")).stdout.split()
    shown = yaml.safe_load(ok(await nimbus("image", "show", name, "-f", "yaml")).stdout)
    assert shown["id"] == made["id"]
    ok(await nimbus("image", "delete", made["id"]))
    assert name not in ok(await nimbus("image", "list", "-f", "value", "-c", "name")).stdout.split()
    public = json.loads(ok(await nimbus("image", "create", qcow2_image, "--name", name, "--public",
                                        "-f", "json", token=ADMIN_TOKEN)).stdout)
    assert public["visibility"] == "public"
    refused = await nimbus("image", "create", qcow2_image, "--public")
    assert refused.exit_code == 7   # PERMISSION_DENIED: only admins publish

    odd = tmp_path / "disk.vhd"
    odd.write_bytes(b"x")
    result = await nimbus("image", "create", str(odd), token=ADMIN_TOKEN)
    assert result.exit_code == 2 and "--disk-format" in result.stderr


async def test_image_sharing(nimbus, qcow2_image):
    name = f"team-{uuid.uuid4().hex[:6]}"
    made = json.loads(ok(await nimbus("image", "create", qcow2_image, "--name", name, "--shared",
                                      "-f", "json")).stdout)
    assert made["visibility"] == "shared"
    friend = f"friend-{uuid.uuid4().hex[:6]}"
    as_friend = {"token": f"bob:{friend}"}
    ok(await nimbus("image", "member", "add", made["id"], friend))
    assert name not in ok(await nimbus("image", "list", "-f", "value", "-c", "name",
                                       **as_friend)).stdout.split()   # pending
    answered = json.loads(ok(await nimbus("image", "member", "set", made["id"], friend,
                                          "accepted", "-f", "json", **as_friend)).stdout)
    assert answered["status"] == "accepted"
    assert name in ok(await nimbus("image", "list", "-f", "value", "-c", "name",
                                   **as_friend)).stdout.split()
    assert ok(await nimbus("image", "member", "list", made["id"], "-f", "value",
                           "-c", "member")).stdout.split() == [friend]
    ok(await nimbus("image", "set", made["id"], "--visibility", "private"))
    assert (await nimbus("image", "show", made["id"], **as_friend)).exit_code == 4   # NOT_FOUND
    ok(await nimbus("image", "member", "remove", made["id"], friend))
    ok(await nimbus("image", "delete", made["id"]))


async def test_keypairs_networks_and_quota(nimbus, tmp_path):
    key = tmp_path / "id_ed25519"
    made = ok(await nimbus("keypair", "create", "k1", "--private-key", str(key), "-f", "json"))
    assert json.loads(made.stdout)["key_type"] == "ssh-ed25519"
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert ok(await nimbus("keypair", "list", "-f", "value", "-c", "name")).stdout == "k1\n"
    ok(await nimbus("keypair", "delete", "k1"))

    net = json.loads(ok(await nimbus("network", "create", "n1", "-f", "json")).stdout)
    sub = json.loads(ok(await nimbus("subnet", "create", "s1", "--network", net["id"],
                                     "--subnet-range", "10.9.0.0/24", "-f", "json")).stdout)
    assert sub["gateway_ip"] == "10.9.0.1"
    port = json.loads(ok(await nimbus("port", "create", "p1", "--network", net["id"],
                                      "--fixed-ip", f"{sub['id']}:10.9.0.20", "-f", "json")).stdout)
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.9.0.20"}]
    ports = ok(await nimbus("port", "list", "--network", net["id"], "-f", "value", "-c", "id"))
    assert ports.stdout.split() == [port["id"]]
    assert "n1" in ok(await nimbus("network", "show", net["id"])).stdout
    for group, ref in (("port", port["id"]), ("subnet", sub["id"]), ("network", net["id"])):
        ok(await nimbus(group, "delete", ref))
    assert json.loads(ok(await nimbus("network", "list", "-f", "json")).stdout) == []

    quota = json.loads(ok(await nimbus("quota", "show", "-f", "json")).stdout)
    assert quota["project_id"] == nimbus.project and quota["usage"]["instances"]["limit"] == "10"
    assert "instances" in ok(await nimbus("quota", "show")).stdout


WRONG_API = "127.0.0.1:1"


@pytest.mark.parametrize("flag, env, file, winner", [
    # where the token (and the API address) is given: flags > environment > clouds file
    ("flag", "env", "file", "flag"),
    (None, "env", "file", "env"),
    (None, None, "file", "file"),
    ("flag", None, "file", "flag"),
])
async def test_config_precedence_flags_env_file(stack, clouds_file, flag, env, file, winner):
    """The winning source carries the real API address and its own project;
    the others point at a closed port, so a wrong winner fails the call."""
    api = stack.cfg.api_address

    def settings(source):
        return (api if source == winner else WRONG_API), f"alice:from-{source}"
    argv, environ = [], cli_env(clouds_file, NIMBUS_CLOUD="dev")
    if flag:
        argv += ["--api", settings(flag)[0], "--token", settings(flag)[1]]
    if env:
        environ |= {"NIMBUS_API": settings(env)[0], "NIMBUS_TOKEN": settings(env)[1]}
    cloud_api, cloud_token = settings(file)
    clouds_file.write_text(yaml.safe_dump({"clouds": {
        "dev": {"api": cloud_api, "token": cloud_token},
        "default": {"api": WRONG_API, "token": "alice:from-default"}}}))
    result = await cli_runner(argv + ["quota", "show", "-f", "json"], environ)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["project_id"] == f"from-{winner}"
    assert f"from-{winner}" not in result.stderr   # the token is never printed


async def test_the_default_cloud_and_an_unknown_one(stack, clouds_file):
    clouds_file.write_text(yaml.safe_dump({"clouds": {"default": {
        "api": stack.cfg.api_address, "token": "alice:from-default"}}}))
    env = cli_env(clouds_file)
    result = await cli_runner(["quota", "show", "-f", "json"], env)
    assert json.loads(result.stdout)["project_id"] == "from-default"
    result = await cli_runner(["--os-cloud", "prod", "quota", "show"], env)
    assert result.exit_code == 2 and "cloud 'prod' is not in" in result.stderr


async def test_boot_on_a_network_by_name(nimbus):
    net = json.loads(ok(await nimbus("network", "create", "blue", "-f", "json")).stdout)
    ok(await nimbus("subnet", "create", "blue-v4", "--network", net["id"], "--subnet-range",
                    "10.7.0.0/24"))
    server_id = ok(await nimbus("server", "create", "on-blue", "--image", "cirros", "--flavor",
                                "m1.tiny", "--network", "blue", "--wait", "-f", "value", "-c", "id"))
    ports = json.loads(ok(await nimbus("port", "list", "--server", server_id.stdout.strip(),
                                       "-f", "json")).stdout)
    assert [p["network_id"] for p in ports] == [net["id"]]
    assert ports[0]["fixed_ips"][0]["ip_address"].startswith("10.7.0.")

    unknown = await nimbus("server", "create", "x", "--image", "cirros", "--flavor", "m1.tiny",
                           "--network", "green")
    assert unknown.exit_code == 2 and "no network green" in unknown.stderr
    ok(await nimbus("server", "delete", "on-blue", "--wait"))


@pytest.fixture(scope="module")
async def movable(etcd, tmp_path_factory, qcow2_image):
    """One host that resizes in place (make run's setting)."""
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("move")), hosts=1,
                     allow_resize_to_same_host=True) as s:
        await s.flavor("m1.tiny")
        await s.flavor("m1.small", ram_mb=1024, disk_gb=2)
        await s.image(qcow2_image)
        yield s


async def test_lifecycle_commands_wait_for_their_state(movable, clouds_file):
    def run(*args):
        argv = ["--api", movable.cfg.api_address, "--token", "alice:cli-life", *args]
        return cli_runner(argv, cli_env(clouds_file))

    def state(result) -> str:
        return json.loads(ok(result).stdout)["vm_state"]

    ok(await run("server", "create", "life", "--image", "cirros", "--flavor", "m1.tiny", "--wait"))
    for args, want in ((("stop", "life"), "VM_STATE_STOPPED"),
                       (("start", "life"), "VM_STATE_ACTIVE"),
                       (("reboot", "life", "--hard"), "VM_STATE_ACTIVE"),
                       (("resize", "life", "--flavor", "m1.small"), "VM_STATE_RESIZED"),
                       (("confirm", "life"), "VM_STATE_ACTIVE")):
        assert state(await run("server", *args, "--wait", "-f", "json")) == want, args
    shown = json.loads(ok(await run("server", "show", "life", "-f", "json")).stdout)
    assert shown["flavor"]["name"] == "m1.small"
    ok(await run("server", "console-log", "life", "--lines", "5"))
    refused = await run("server", "confirm", "life")      # nothing to confirm now
    assert refused.exit_code == 9 and "FAILED_PRECONDITION" in refused.stderr   # names the state
    assert "vm_state ACTIVE" in refused.stderr


async def test_database_instance_create_wait_connects(dbstack, clouds_file):
    """`nimbus database instance create --wait` follows WatchInstances to
    ACTIVE/HEALTHY; the instance then takes a real client connection."""
    from dbstack import psql

    def run(*args):
        argv = ["--api", dbstack.stack.cfg.api_address, "--database-api", dbstack.address,
                "--token", "alice:cli-db", *args]
        return cli_runner(argv, cli_env(clouds_file))

    made = json.loads(ok(await run(
        "database", "instance", "create", "db1", "--flavor", "m1.tiny", "--datastore", "postgresql",
        "--size", "1", "--database", "app", "--user", "app:s3cret-Pass", "--wait", "-f", "json",
        "--wait-timeout", "120")).stdout)
    assert (made["status"], made["service_status"]) == ("INSTANCE_STATUS_ACTIVE",
                                                        "SERVICE_STATUS_HEALTHY")
    assert "s3cret-Pass" not in json.dumps(made)
    instance = (await dbstack.db.GetInstance(D.GetInstanceRequest(id=made["id"]),
                                             metadata=user("alice", "cli-db"))).instance
    assert psql(instance, "app", "s3cret-Pass", "app").returncode == 0
    listed = ok(await run("database", "instance", "list", "-f", "value", "-c", "name")).stdout
    assert listed.split() == ["db1"]
    shown = json.loads(ok(await run("database", "instance", "show", "db1", "-f", "json")).stdout)
    assert shown["id"] == made["id"]
    ok(await run("database", "instance", "delete", "db1"))
    await dbstack.wait_for(made["id"], lambda i: i is None)


async def test_database_backup_create_list_show_delete(dbstack, clouds_file, monkeypatch):
    """`nimbus database backup …` against the real stack: create --wait
    follows WatchBackups to COMPLETED, list filters, show by name, errors
    by status, delete --wait; a backup whose guest dies ends the wait with
    exit 11 and its reason."""
    from test_database_backups import ROWS, sql
    from test_database_guest import active

    def run(*args, token="alice:demo"):
        argv = ["--api", dbstack.stack.cfg.api_address, "--database-api", dbstack.address,
                "--token", token, *args]
        return cli_runner(argv, cli_env(clouds_file))

    inst = await active(dbstack)
    sql(inst, ROWS)
    made = json.loads(ok(await run("database", "backup", "create", "db1", "--name", "b1",
                                   "--description", "nightly", "--wait", "-f", "json")).stdout)
    assert made["status"] == "BACKUP_STATUS_COMPLETED" and int(made["size_bytes"]) > 0
    assert (made["instance_id"], made["description"], made["tool"]) == (inst.id, "nightly", "pg_dumpall")
    for args, names in ((), ["b1"]), (("--instance", "db1"), ["b1"]), (("--instance", inst.id), ["b1"]), \
            (("--datastore", "mariadb"), []):
        listed = ok(await run("database", "backup", "list", *args, "-f", "value", "-c", "name")).stdout
        assert listed.split() == names, args
    table = ok(await run("database", "backup", "list")).stdout
    assert "b1" in table and "COMPLETED" in table
    shown = yaml.safe_load(ok(await run("database", "backup", "show", "b1", "-f", "yaml")).stdout)
    assert shown["id"] == made["id"] and shown["checksum_sha256"] == made["checksum_sha256"]
    assert ok(await run("database", "backup", "show", made["id"], "-f", "value", "-c", "status")
              ).stdout.strip() == "COMPLETED"

    for args, token, code, words in [
        (("show", "nope"), "alice:demo", 4, "NOT_FOUND"),
        (("show", "b1"), "bob:other", 4, "NOT_FOUND"),            # another project's
        (("create", "db1", "--name", " "), "alice:demo", 3, "name: 1 to 255 characters"),
        (("create", "db1", "--name", "x"), "bob:other", 4, "NOT_FOUND"),
        (("list", "--all-projects"), "alice:demo", 7, "PERMISSION_DENIED"),
    ]:
        refused = await run("database", "backup", *args, token=token)
        assert refused.exit_code == code and words in refused.stderr, (args, refused.stderr)

    ok(await run("database", "backup", "delete", "b1", "--wait"))
    assert ok(await run("database", "backup", "list", "-f", "json")).stdout.strip() == "[]"
    assert os.listdir(dbstack.backup_dir) == []
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=inst.id), metadata=user("alice", "demo"))
    await dbstack.wait_for(inst.id, lambda i: i is None)

    # The guest agent exits for real (os._exit) mid-upload: FAILED ends the wait.
    monkeypatch.setenv("NIMBUS_CRASH_AT", "guestagent.backup.streaming")
    crashing = await active(dbstack, name="db-crash")
    failed = await run("database", "backup", "create", "db-crash", "--name", "b2", "--wait")
    assert failed.exit_code == 11 and "is FAILED" in failed.stderr, failed.stderr
    ok(await run("database", "backup", "delete", "b2", "--wait"))
    await dbstack.db.DeleteInstance(D.DeleteInstanceRequest(id=crashing.id), metadata=user("alice", "demo"))
    await dbstack.wait_for(crashing.id, lambda i: i is None)
