"""Stop, start, soft and hard reboot, console output and guests resumed
after their host restarts: real etcd, the libvirt test driver, real gRPC."""

import os

import grpc
import libvirt
import pytest

from nimbus.compute.v1 import instance_actions_pb2 as IA, instance_actions_pb2_grpc
from nimbus.services.agent.main import AgentProcess
from stack import C, Stack, expect, user

RUNNING, SHUTOFF = libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_SHUTOFF


@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, power_sync_interval=0.2,
                     shutdown_timeout=2.0) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


async def boot(stack, name="p-1") -> C.Server:
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name=name, image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
    done = await stack.wait_settled(server.id)
    assert done.vm_state == C.VM_STATE_ACTIVE
    return done


def idle(vm_state):
    return lambda s: s is not None and s.task_state == 0 and s.vm_state == vm_state


def domain_state(stack, server) -> int:
    agent = next(a for a in stack.agents.agents if a.host == server.host)
    return agent.driver.conn.lookupByUUIDString(server.id).state()[0]


async def actions(stack, server_id):
    stub = instance_actions_pb2_grpc.InstanceActionServiceStub(stack.channel)
    resp = await stub.ListInstanceActions(IA.ListInstanceActionsRequest(server_id=server_id),
                                          metadata=user())
    out = []
    for listed in sorted(resp.actions, key=lambda a: a.start_time.ToNanoseconds()):
        a = (await stub.GetInstanceAction(IA.GetInstanceActionRequest(
            server_id=server_id, request_id=listed.request_id), metadata=user())).action
        out.append((a.action, [(e.event, e.result) for e in a.events]))
    return out


async def test_stop_start_and_reboots(stack):
    server = await boot(stack)
    resp = await stack.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
    assert resp.server.task_state == C.TASK_STATE_POWERING_OFF
    stopped = await stack.wait_for(server.id, idle(C.VM_STATE_STOPPED))
    assert stopped.power_state == C.POWER_STATE_SHUTDOWN and domain_state(stack, server) == SHUTOFF

    await stack.api.RebootServer(C.RebootServerRequest(id=server.id, type=C.REBOOT_TYPE_HARD),
                                 metadata=user())   # hard reboot also starts a stopped server
    rebooted = await stack.wait_for(server.id, idle(C.VM_STATE_ACTIVE))
    assert rebooted.power_state == C.POWER_STATE_RUNNING and domain_state(stack, server) == RUNNING

    await stack.api.RebootServer(C.RebootServerRequest(id=server.id, type=C.REBOOT_TYPE_SOFT),
                                 metadata=user())
    await stack.wait_for(server.id, lambda s: s.task_state == C.TASK_STATE_UNSPECIFIED
                         and s.vm_state == C.VM_STATE_ACTIVE)
    await stack.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, idle(C.VM_STATE_STOPPED))
    await stack.api.StartServer(C.StartServerRequest(id=server.id), metadata=user())
    started = await stack.wait_for(server.id, idle(C.VM_STATE_ACTIVE))
    assert started.power_state == C.POWER_STATE_RUNNING and domain_state(stack, server) == RUNNING
    assert started.host == server.host and not started.fault.message

    assert await actions(stack, server.id) == [
        ("create", [("compute__do_build_and_run_instance", "Success")]),
        ("stop", [("compute_stop_instance", "Success")]),
        ("reboot", [("compute_reboot_instance", "Success")]),
        ("reboot", [("compute_reboot_instance", "Success")]),
        ("stop", [("compute_stop_instance", "Success")]),
        ("start", [("compute_start_instance", "Success")])]


@pytest.mark.parametrize("first,call,code,field", [
    (None, "StartServer", grpc.StatusCode.FAILED_PRECONDITION, ""),     # ACTIVE
    ("StopServer", "StopServer", grpc.StatusCode.FAILED_PRECONDITION, ""),
    ("StopServer", "RebootServer/SOFT", grpc.StatusCode.FAILED_PRECONDITION, ""),
    (None, "RebootServer/UNSPECIFIED", grpc.StatusCode.INVALID_ARGUMENT, "type"),
    (None, "GetConsoleOutput/-1", grpc.StatusCode.INVALID_ARGUMENT, "length"),
])
async def test_actions_in_wrong_states(stack, first, call, code, field):
    server = await boot(stack)
    if first:
        await getattr(stack.api, first)(C.StopServerRequest(id=server.id), metadata=user())
        await stack.wait_for(server.id, idle(C.VM_STATE_STOPPED))
    method, _, arg = call.partition("/")
    if method == "RebootServer":
        request = C.RebootServerRequest(id=server.id, type=C.RebootType.Value(f"REBOOT_TYPE_{arg}"))
    elif method == "GetConsoleOutput":
        request = C.GetConsoleOutputRequest(id=server.id, length=int(arg))
    else:
        request = getattr(C, f"{method}Request")(id=server.id)
    err = await expect(getattr(stack.api, method)(request, metadata=user()), code, field)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        assert "vm_state" in err.details() and "task_state" in err.details()


async def test_an_action_while_another_is_pending_is_refused_and_redone_after_a_restart(stack):
    server = await boot(stack)
    await stack.agents.stop()   # nobody acts on the stop while the host is away
    await stack.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
    for call, request in (("RebootServer", C.RebootServerRequest(id=server.id,
                                                                 type=C.REBOOT_TYPE_HARD)),
                          ("StartServer", C.StartServerRequest(id=server.id)),
                          ("StopServer", C.StopServerRequest(id=server.id))):
        err = await expect(getattr(stack.api, call)(request, metadata=user()),
                           grpc.StatusCode.FAILED_PRECONDITION)
        assert "task_state POWERING_OFF" in err.details()
    stack.agents = await AgentProcess(stack.cfg).start()   # back: it finishes the stop
    stopped = await stack.wait_for(server.id, idle(C.VM_STATE_STOPPED))
    assert stopped.power_state == C.POWER_STATE_SHUTDOWN


async def test_unknown_and_other_projects_servers_are_not_found(stack):
    server = await boot(stack)
    await expect(stack.api.StopServer(C.StopServerRequest(id="0c3f5a43-0000-4000-8000-000000000000"),
                                      metadata=user()), grpc.StatusCode.NOT_FOUND, "server")
    await expect(stack.api.StopServer(C.StopServerRequest(id=server.id),
                                      metadata=user("mallory", "other")),
                 grpc.StatusCode.NOT_FOUND, "server")


async def test_console_output_is_the_tail_of_the_serial_log(stack):
    server = await boot(stack)
    agent = next(a for a in stack.agents.agents if a.host == server.host)
    with open(f"{agent.driver.instance_dir(server.id)}/console.log", "w") as f:
        f.write("".join(f"line {i}\n" for i in range(1, 6)))
    resp = await stack.api.GetConsoleOutput(C.GetConsoleOutputRequest(id=server.id, length=2),
                                            metadata=user())
    assert resp.output == "line 4\nline 5\n"
    whole = await stack.api.GetConsoleOutput(C.GetConsoleOutputRequest(id=server.id), metadata=user())
    assert whole.output.count("\n") == 5


@pytest.mark.parametrize("resume", [True, False])
async def test_guests_after_their_host_restarts(stack, resume):
    server = await boot(stack)
    await stack.agents.stop()   # the test driver forgets every domain with its host
    stack.cfg.resume_guests_state_on_host_boot = resume
    stack.agents = await AgentProcess(stack.cfg).start()
    await stack.wait_hosts(2)
    if resume:
        again = await stack.wait_for(server.id, idle(C.VM_STATE_ACTIVE))
        assert domain_state(stack, again) == RUNNING
        # It stays so: the power sync finds it running.
        await stack.wait_for(server.id, lambda s: s.power_state == C.POWER_STATE_RUNNING)
        assert (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=user())
                ).server.vm_state == C.VM_STATE_ACTIVE
    else:
        stopped = await stack.wait_for(server.id, idle(C.VM_STATE_STOPPED))
        assert stopped.power_state == C.POWER_STATE_UNSPECIFIED   # no domain at all
        await stack.api.StartServer(C.StartServerRequest(id=server.id), metadata=user())
        started = await stack.wait_for(server.id, idle(C.VM_STATE_ACTIVE))
        assert domain_state(stack, started) == RUNNING   # defined again from libvirt.xml


async def test_a_failed_start_leaves_a_fault_and_an_error_event(stack):
    server = await boot(stack)
    await stack.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
    await stack.wait_for(server.id, idle(C.VM_STATE_STOPPED))
    agent = next(a for a in stack.agents.agents if a.host == server.host)
    agent.driver.conn.lookupByUUIDString(server.id).undefine()   # the definition is lost ...
    os.remove(os.path.join(agent.driver.instance_dir(server.id), "libvirt.xml"))   # ... for good
    await stack.api.StartServer(C.StartServerRequest(id=server.id), metadata=user())
    failed = await stack.wait_for(server.id, lambda s: s.task_state == 0 and s.fault.message)
    assert failed.vm_state == C.VM_STATE_STOPPED
    assert failed.fault.message == f"Start of server {server.id} failed"
    assert "libvirt.xml is missing" in failed.fault.details   # admins see why (wait_for is admin)
    owner = (await stack.api.GetServer(C.GetServerRequest(id=server.id), metadata=user())).server
    assert owner.fault.message == failed.fault.message and not owner.fault.details
    assert (await actions(stack, server.id))[-1] == ("start", [("compute_start_instance", "Error")])


async def test_a_power_action_on_a_dead_host_ends_with_a_fault(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, node_ttl=2, sweep_interval=0.3) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        server = await boot(s)
        index = next(i for i, a in enumerate(s.agents.agents) if a.host == server.host)
        s.agents.tasks[index].cancel()   # the host dies
        await s.api.StopServer(C.StopServerRequest(id=server.id), metadata=user())
        ended = await s.wait_for(server.id, idle(C.VM_STATE_ACTIVE), timeout=30)
        assert ended.fault.message == f"compute host {server.host} went down during stop"
