"""The transition table: every action from every (vm_state, task_state) is
allowed or FAILED_PRECONDITION naming the current state; agent updates and
the agent's dispatch follow the table."""

import itertools

import grpc
import pytest

from nimbus import errors, states
from nimbus.compute.v1 import compute_pb2 as C

NONE = C.TASK_STATE_UNSPECIFIED
ANY_VM = set(C.VmState.values())
# The contract (issue 7, Nova's check_instance_state), written out
# independently of the table: action -> vm_states it may start from, with no
# task in progress.
ALLOWED_FROM = {
    "create": {C.VM_STATE_UNSPECIFIED},
    "stop": {C.VM_STATE_ACTIVE, C.VM_STATE_ERROR},
    "start": {C.VM_STATE_STOPPED},
    "reboot_soft": {C.VM_STATE_ACTIVE},
    "reboot_hard": {C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED, C.VM_STATE_ERROR},
    "resize": {C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED},
    "migrate": {C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED},
    "confirm_resize": {C.VM_STATE_RESIZED},
    "revert_resize": {C.VM_STATE_RESIZED},
    "delete": ANY_VM - {C.VM_STATE_DELETED},
}


def expected_allowed(action: str, vm_state: int, task_state: int) -> bool:
    if action == "delete":   # delete overrides any task but itself
        return vm_state in ALLOWED_FROM[action] and task_state != C.TASK_STATE_DELETING
    return vm_state in ALLOWED_FROM[action] and task_state == NONE


def test_every_action_is_in_the_table():
    assert set(states.ACTIONS) == set(ALLOWED_FROM)


@pytest.mark.parametrize("action,vm_state,task_state", list(itertools.product(
    sorted(ALLOWED_FROM), sorted(C.VmState.values()), sorted(C.TaskState.values()))))
def test_action_from_state(action, vm_state, task_state):
    server = C.Server(id="s-1", vm_state=vm_state, task_state=task_state)
    if expected_allowed(action, vm_state, task_state):
        states.check(action, server)
        return
    with pytest.raises(errors.FailedPrecondition) as err:
        states.check(action, server)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert states.vm_state_name(vm_state) in err.value.message
    assert states.task_state_name(task_state) in err.value.message


@pytest.mark.parametrize("action", sorted(ALLOWED_FROM))
def test_action_sets_a_task_the_agent_or_conductor_acts_on(action):
    sets = states.ACTIONS[action].sets
    assert sets != NONE and sets in states.TASKS


B, A, S, E = C.VM_STATE_BUILDING, C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED, C.VM_STATE_ERROR
T = C


@pytest.mark.parametrize("vm,task,new_task,new_vm,ok", [
    (B, T.TASK_STATE_SCHEDULING, T.TASK_STATE_NETWORKING, B, True),
    (B, T.TASK_STATE_NETWORKING, T.TASK_STATE_NETWORKING, B, True),      # a retry that landed
    (B, T.TASK_STATE_BLOCK_DEVICE_MAPPING, T.TASK_STATE_SPAWNING, None, True),
    (B, T.TASK_STATE_SPAWNING, NONE, A, True),
    (B, T.TASK_STATE_SPAWNING, NONE, S, False),
    (B, T.TASK_STATE_SCHEDULING, T.TASK_STATE_SPAWNING, None, False),    # skips steps
    (A, NONE, NONE, S, True),                                            # power sync
    (A, NONE, T.TASK_STATE_POWERING_OFF, None, False),                   # the API's command
    (A, T.TASK_STATE_POWERING_OFF, NONE, S, True),
    (S, T.TASK_STATE_POWERING_ON, NONE, A, True),
    (A, T.TASK_STATE_REBOOTING_HARD, NONE, A, True),
    (A, T.TASK_STATE_DELETING, NONE, A, False),                          # a delete is final
    (A, T.TASK_STATE_REBOOTING, NONE, S, False),
    (A, T.TASK_STATE_RESIZE_FINISH, NONE, C.VM_STATE_RESIZED, False),   # AdvanceMigration's
])
def test_agent_updates(vm, task, new_task, new_vm, ok):
    assert states.agent_may_set(C.Server(vm_state=vm, task_state=task), new_task, new_vm) is ok


@pytest.mark.parametrize("task,new_task,new_vm,ok", [
    (T.TASK_STATE_RESIZE_PREP, T.TASK_STATE_RESIZE_MIGRATED, A, True),    # the source's one report
    (T.TASK_STATE_RESIZE_PREP, T.TASK_STATE_RESIZE_FINISH, A, False),
    (T.TASK_STATE_RESIZE_PREP, NONE, C.VM_STATE_RESIZED, False),
    (T.TASK_STATE_RESIZE_MIGRATED, NONE, C.VM_STATE_RESIZED, True),  # the destination's one report
    (T.TASK_STATE_RESIZE_MIGRATED, NONE, A, False),
    (T.TASK_STATE_RESIZE_MIGRATING, T.TASK_STATE_RESIZE_MIGRATED, A, True),   # an older agent's
    (T.TASK_STATE_RESIZE_FINISH, NONE, C.VM_STATE_RESIZED, True),
    (T.TASK_STATE_RESIZE_FINISH, NONE, A, False),
    (T.TASK_STATE_RESIZE_CONFIRMING, NONE, S, True),
    (T.TASK_STATE_RESIZE_REVERTING, T.TASK_STATE_RESIZE_REVERTING, A, True),   # vm unchanged
    (T.TASK_STATE_RESIZE_REVERTING, NONE, A, True),
    (T.TASK_STATE_RESIZE_MIGRATING, NONE, E, False),
    (T.TASK_STATE_SPAWNING, NONE, A, False),                 # UpdateInstance's
])
def test_migration_steps(task, new_task, new_vm, ok):
    current = C.Server(vm_state=A, task_state=task)
    assert states.migration_may_go(current, new_task, new_vm) is ok


@pytest.mark.parametrize("vm,task,host,running,step", [
    (B, T.TASK_STATE_SCHEDULING, "h", None, "build"),
    (B, T.TASK_STATE_SCHEDULING, "", None, None),            # the conductor's
    (B, T.TASK_STATE_SCHEDULING, "h", "build", None),
    (B, T.TASK_STATE_SPAWNING, "h", None, "recover"),
    (B, T.TASK_STATE_SPAWNING, "h", "build", None),
    (A, T.TASK_STATE_DELETING, "h", "build", "delete"),
    (A, T.TASK_STATE_DELETING, "h", "delete", None),
    (A, T.TASK_STATE_POWERING_OFF, "h", None, "stop"),
    (S, T.TASK_STATE_POWERING_ON, "h", None, "start"),
    (A, T.TASK_STATE_REBOOTING, "h", None, "reboot"),
    (E, T.TASK_STATE_REBOOTING_HARD, "h", None, "reboot"),
    (A, NONE, "h", None, None),
])
def test_agent_dispatch(vm, task, host, running, step):
    server = C.Server(vm_state=vm, task_state=task, host=host)
    assert states.agent_step(server, running) == step
