"""DatabaseService's pure parts: verifiers, naming rules, the status table,
the create checks that need no reads, and the controller's queue."""

import asyncio
import base64
import hashlib
import hmac

import pytest

from nimbus import errors
from nimbus.database.v1 import database_pb2 as D
from nimbus import verifiers
from nimbus.services.database import naming, status, validation
from nimbus.services.database.controller import Controller


def test_mysql_native_password_matches_mariadbs_own():
    # SELECT PASSWORD('password') on MariaDB 10.11
    assert verifiers.mysql_native("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


def test_scram_verifier_is_what_postgresql_checks():
    v = verifiers.scram_sha256("s3cret-Pass", salt=b"0123456789abcdef")
    method, rest = v.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored, server = (base64.b64decode(k) for k in keys.split(":"))
    assert method == "SCRAM-SHA-256" and int(iterations) == 4096
    salted = hashlib.pbkdf2_hmac("sha256", b"s3cret-Pass", base64.b64decode(salt), 4096)
    assert stored == hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    assert server == hmac.digest(salted, b"Server Key", "sha256")
    assert verifiers.scram_sha256("s3cret-Pass") != verifiers.scram_sha256("s3cret-Pass")  # salted


@pytest.mark.parametrize("manager,name,ok", [
    ("postgresql", "app", True), ("postgresql", "x" * 63, True), ("postgresql", "x" * 64, False),
    ("postgresql", "1abc", False), ("postgresql", "template0", False), ("postgresql", "a b", False),
    ("mariadb", "1abc", True), ("mariadb", "x" * 64, True), ("mariadb", "x" * 65, False),
    ("mariadb", "mysql", False), ("mariadb", "a;drop", False), ("mariadb", "", False),
])
def test_database_names(manager, name, ok):
    assert (naming.database_problem(manager, name) is None) == ok


@pytest.mark.parametrize("manager,name,host,ok", [
    ("postgresql", "app", "", True), ("postgresql", "postgres", "", False),
    ("postgresql", "app", "%", False), ("mariadb", "app", "%", True),
    ("mariadb", "root", "", False), ("mariadb", "x" * 80, "", True), ("mariadb", "x" * 81, "", False),
    ("mariadb", "app", "bad host!", False),
])
def test_user_names(manager, name, host, ok):
    assert (naming.user_problem(manager, name, host) is None) == ok


@pytest.mark.parametrize("task,service,expected", [
    (D.TASK_STATUS_BUILDING, D.SERVICE_STATUS_NEW, D.INSTANCE_STATUS_BUILD),
    (D.TASK_STATUS_BUILDING, D.SERVICE_STATUS_HEALTHY, D.INSTANCE_STATUS_BUILD),
    (D.TASK_STATUS_NONE, D.SERVICE_STATUS_HEALTHY, D.INSTANCE_STATUS_ACTIVE),
    (D.TASK_STATUS_NONE, D.SERVICE_STATUS_CRASHED, D.INSTANCE_STATUS_SHUTDOWN),
    (D.TASK_STATUS_NONE, D.SERVICE_STATUS_SHUTDOWN, D.INSTANCE_STATUS_SHUTDOWN),
    (D.TASK_STATUS_NONE, D.SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT, D.INSTANCE_STATUS_FAILED),
    (D.TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA, D.SERVICE_STATUS_BUILDING, D.INSTANCE_STATUS_ERROR),
    (D.TASK_STATUS_DELETING, D.SERVICE_STATUS_HEALTHY, D.INSTANCE_STATUS_DELETING),
])
def test_status_table(task, service, expected):
    inst = D.Instance(task_status=task, service_status=service)
    status.refresh(inst)
    assert inst.status == expected


def test_schema_checks_name_the_field():
    users = [D.UserSpec(name="app", password="long-enough", databases=["a", "b"])]
    with pytest.raises(errors.InvalidArgument) as err:
        validation.check_users_databases(D.CreateInstanceRequest(
            databases=[D.DatabaseSpec(name="a")], users=users))
    assert err.value.field == "users[0].databases[1]"


async def test_controller_retries_with_backoff_and_reruns_a_key_marked_while_running():
    calls = []
    gate = asyncio.Event()

    async def reconcile(key):
        calls.append(key)
        if len(calls) == 1:
            await gate.wait()
        if len(calls) == 2:
            raise RuntimeError("transient")
        return None
    c = Controller("t", reconcile)
    c.enqueue("k")
    await asyncio.sleep(0)
    c.enqueue("k")           # marked while running: runs again after
    gate.set()
    for _ in range(200):
        if len(calls) >= 3:
            break
        await asyncio.sleep(0.01)
    assert calls == ["k", "k", "k"]   # first, the re-run (fails), the retry after backoff
    assert "k" not in c.failures
    await c.stop()


async def test_controller_cancel_interrupts_and_runs_again():
    started, done = [], []

    async def reconcile(key):
        started.append(key)
        if len(started) == 1:
            await asyncio.sleep(30)
        done.append(key)
    c = Controller("t", reconcile)
    c.enqueue("k")
    await asyncio.sleep(0.01)
    c.cancel("k")
    for _ in range(100):
        if done:
            break
        await asyncio.sleep(0.01)
    assert started == ["k", "k"] and done == ["k"]
    await c.stop()


async def test_a_stopped_controller_leads_again():
    """Leadership lost (stop) then won again: the same controller queues,
    retries and is counted again; nothing of the old term is left over."""
    from nimbus import metrics
    runs, fail = [], [True]

    async def reconcile(key):
        runs.append(key)
        if fail[0]:
            fail[0] = False
            raise RuntimeError("transient")
    c = Controller("relead", reconcile)
    c.enqueue_after("old", 30)
    await c.stop()
    assert not c.timers
    assert c.metrics not in metrics.CONTROLLER_QUEUES.controllers
    c.enqueue("k")   # the next term
    assert c.metrics in metrics.CONTROLLER_QUEUES.controllers
    for _ in range(200):
        if runs == ["k", "k"]:
            break
        await asyncio.sleep(0.01)
    assert runs == ["k", "k"] and not c.failures   # failed once, retried after backoff
    await c.stop()


async def test_controller_cancel_before_the_task_started_still_runs_again():
    """A create then an immediate delete can reach the controller in one
    informer batch: the build's task exists but has not started when the
    delete cancels it. The delete's run must still happen (it was lost,
    leaving an instance DELETING forever)."""
    runs = []

    async def reconcile(key):
        runs.append(key)
    c = Controller("t", reconcile)
    c.enqueue("k")       # created, not yet started
    c.cancel("k")        # the delete overtakes it...
    c.enqueue("k")       # ...and asks for its own run
    for _ in range(100):
        if runs:
            break
        await asyncio.sleep(0.01)
    assert runs == ["k"]
    await c.stop()
