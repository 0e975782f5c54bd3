"""The one transition table: Nova's vm_states/task_states and its
`@check_instance_state`, as data.

- ACTIONS: for every user action, the vm_states and task_states it may start
  from and the task_state it sets (the command: whoever must act watches for
  it). The API guards read it (`check`), and so does the CAS that applies the
  action (`expected_task_states`).
- TASKS: for every task_state, who acts on it (the agent's step, or the
  conductor), where an update from it may go (`next` task states and the
  vm_states it may end in), and what a restarted agent does when it finds a
  server in it with no work running (`on_restart`). The conductor's
  UpdateInstance validation and the agent's dispatch read it.

Nobody keeps a second list of "building" states: BUILD_TASKS is derived here."""

from __future__ import annotations

import dataclasses

from nimbus import errors
from nimbus.compute.v1 import compute_pb2 as C

NONE = C.TASK_STATE_UNSPECIFIED   # Nova's task_state None
ALL_VM_STATES = frozenset(C.VmState.values())
ALL_TASK_STATES = frozenset(C.TaskState.values())

# Fields an agent may change on its servers; everything else is the API's.
AGENT_FIELDS = frozenset({"vm_state", "task_state", "power_state", "fault", "launched_at"})


@dataclasses.dataclass(frozen=True)
class Action:
    name: str
    vm_states: frozenset[int]     # may start from one of these vm_states ...
    task_states: frozenset[int]   # ... while the task_state is one of these
    sets: int                     # the task_state it sets

    def allows(self, vm_state: int, task_state: int) -> bool:
        return vm_state in self.vm_states and task_state in self.task_states


def _action(name: str, vm_states, sets: int, task_states=(NONE,)) -> Action:
    return Action(name, frozenset(vm_states), frozenset(task_states), sets)


V = C
ACTIONS: dict[str, Action] = {a.name: a for a in (
    # A new record: there is no prior state (UNSPECIFIED stands for "none yet").
    _action("create", [V.VM_STATE_UNSPECIFIED], C.TASK_STATE_SCHEDULING),
    # Delete wins over everything but itself (Nova's delete ignores task_state).
    _action("delete", ALL_VM_STATES - {V.VM_STATE_DELETED}, C.TASK_STATE_DELETING,
            ALL_TASK_STATES - {C.TASK_STATE_DELETING}),
    _action("stop", [V.VM_STATE_ACTIVE, V.VM_STATE_ERROR], C.TASK_STATE_POWERING_OFF),
    _action("start", [V.VM_STATE_STOPPED], C.TASK_STATE_POWERING_ON),
    _action("reboot_soft", [V.VM_STATE_ACTIVE], C.TASK_STATE_REBOOTING),
    _action("reboot_hard", [V.VM_STATE_ACTIVE, V.VM_STATE_STOPPED, V.VM_STATE_ERROR],
            C.TASK_STATE_REBOOTING_HARD),
    _action("resize", [V.VM_STATE_ACTIVE, V.VM_STATE_STOPPED], C.TASK_STATE_RESIZE_PREP),
    _action("migrate", [V.VM_STATE_ACTIVE, V.VM_STATE_STOPPED], C.TASK_STATE_RESIZE_PREP),
    _action("confirm_resize", [V.VM_STATE_RESIZED], C.TASK_STATE_RESIZE_CONFIRMING),
    _action("revert_resize", [V.VM_STATE_RESIZED], C.TASK_STATE_RESIZE_REVERTING),
)}


# What a restarted agent does with a server it finds in a task state with no
# work of its own running: redo the step (it is idempotent), or clean up and
# give the server back for rescheduling (a build cut short).
REDO, RECOVER = "redo", "recover"


@dataclasses.dataclass(frozen=True)
class Task:
    state: int
    actor: str                    # "agent" or "conductor"
    step: str                     # the operation that acts on it
    next: frozenset[int]          # task states an update from here may set
    ends: frozenset[int]          # vm_states an update from here may set
    on_restart: str = REDO
    event: str = ""               # the instance action event its end records (Nova's names)
    via: str = "UpdateInstance"   # the conductor RPC an agent reports its steps with


def _task(state, actor, step, next_states, ends, on_restart=REDO, event="",
          via="UpdateInstance") -> Task:
    return Task(state, actor, step, frozenset(next_states), frozenset(ends), on_restart, event,
                via)


BUILDING, ACTIVE, STOPPED, ERROR = (V.VM_STATE_BUILDING, V.VM_STATE_ACTIVE, V.VM_STATE_STOPPED,
                                    V.VM_STATE_ERROR)
TASKS: dict[int, Task] = {t.state: t for t in (
    # Nobody is working on it: only the power-state sync updates it (Nova's
    # _sync_instance_power_state), and the restart of a host resumes guests.
    _task(NONE, "agent", "sync_power", [NONE], [ACTIVE, STOPPED]),
    # SCHEDULING without a host is the conductor's; with one, the agent
    # builds. NETWORKING -> BLOCK_DEVICE_MAPPING is the conductor's
    # AllocateNetworks, at the agent's request.
    _task(C.TASK_STATE_SCHEDULING, "conductor", "build", [C.TASK_STATE_NETWORKING], [BUILDING]),
    _task(C.TASK_STATE_NETWORKING, "agent", "build", [C.TASK_STATE_BLOCK_DEVICE_MAPPING],
          [BUILDING, ERROR], RECOVER),
    _task(C.TASK_STATE_BLOCK_DEVICE_MAPPING, "agent", "build", [C.TASK_STATE_SPAWNING],
          [BUILDING], RECOVER),
    _task(C.TASK_STATE_SPAWNING, "agent", "build", [NONE], [ACTIVE, ERROR], RECOVER,
          "compute__do_build_and_run_instance"),
    _task(C.TASK_STATE_DELETING, "agent", "delete", [], []),
    # A failed power action keeps the vm_state (stop, start) or ends in
    # ERROR (reboot), with a fault, as Nova's do.
    _task(C.TASK_STATE_POWERING_OFF, "agent", "stop", [NONE], [STOPPED, ACTIVE, ERROR],
          event="compute_stop_instance"),
    _task(C.TASK_STATE_POWERING_ON, "agent", "start", [NONE], [ACTIVE, STOPPED],
          event="compute_start_instance"),
    _task(C.TASK_STATE_REBOOTING, "agent", "reboot", [NONE], [ACTIVE, ERROR],
          event="compute_reboot_instance"),
    _task(C.TASK_STATE_REBOOTING_HARD, "agent", "reboot", [NONE], [ACTIVE, ERROR],
          event="compute_reboot_instance"),
    # A move (resize, cold migration): the conductor claims a destination
    # in RESIZE_PREP, then the source powers off and keeps its disks for
    # sending in one step (-> MIGRATED), and the destination fetches them
    # and defines the domain in one step (-> RESIZED). Each host reports
    # once per part: every report is a write, a watch event for every
    # informer and stream, and a call. Both parts can be redone from the
    # start, so a crash inside one is recovered by the same step again.
    # MIGRATING and FINISH (a report each, before) are kept for records an
    # older agent left there. Confirm is the source's (cleanup), revert the
    # destination's then the source's. Every step goes through
    # AdvanceMigration, which moves the migration record and allocations
    # with the instance; a failed step ends in ERROR with a fault. "resize"
    # picks the host's part from the migration context
    # (services/agent/resize.py).
    _task(C.TASK_STATE_RESIZE_PREP, "agent", "resize", [C.TASK_STATE_RESIZE_MIGRATED], [ERROR],
          via="AdvanceMigration"),
    _task(C.TASK_STATE_RESIZE_MIGRATING, "agent", "resize", [C.TASK_STATE_RESIZE_MIGRATED], [ERROR],
          via="AdvanceMigration"),
    _task(C.TASK_STATE_RESIZE_MIGRATED, "agent", "resize", [NONE], [V.VM_STATE_RESIZED, ERROR],
          event="compute_finish_resize", via="AdvanceMigration"),
    _task(C.TASK_STATE_RESIZE_FINISH, "agent", "resize", [NONE], [V.VM_STATE_RESIZED, ERROR],
          event="compute_finish_resize", via="AdvanceMigration"),
    _task(C.TASK_STATE_RESIZE_CONFIRMING, "agent", "resize", [NONE], [ACTIVE, STOPPED, ERROR],
          event="compute_confirm_resize", via="AdvanceMigration"),
    # The destination's part keeps RESIZE_REVERTING (dest_reverted), the
    # source's ends it.
    _task(C.TASK_STATE_RESIZE_REVERTING, "agent", "resize",
          [C.TASK_STATE_RESIZE_REVERTING, NONE], [ACTIVE, STOPPED, ERROR],
          event="compute_finish_revert_resize", via="AdvanceMigration"),
)}
RESIZE_TASKS = frozenset(t.state for t in TASKS.values() if t.step == "resize")

BUILD_TASKS = frozenset(t.state for t in TASKS.values() if t.step == "build")
# The actions' names in instance actions (Nova's instance_actions).
ACTION_NAMES = {"reboot_soft": "reboot", "reboot_hard": "reboot", "confirm_resize": "confirmResize",
                "revert_resize": "revertResize"}


def ending_event(expected: list[int], task_state: int) -> str:
    """The instance action event an agent's update records: one that ends
    its task (back to none), on its first try (a retry, which also expects
    the target state, may have landed already and must not add it twice)."""
    if len(expected) != 1 or task_state != NONE:
        return ""
    task = TASKS.get(expected[0])
    return task.event if task is not None else ""


def vm_state_name(vm_state: int) -> str:
    return C.VmState.Name(vm_state).removeprefix("VM_STATE_")


def task_state_name(task_state: int) -> str:
    return "none" if task_state == NONE else C.TaskState.Name(task_state).removeprefix("TASK_STATE_")


def check(action: str, server: C.Server) -> None:
    """Nova's check_instance_state: FAILED_PRECONDITION naming the current
    state when `action` may not start from it."""
    rule = ACTIONS[action]
    if not rule.allows(server.vm_state, server.task_state):
        raise errors.InvalidState(action, server.id, vm_state_name(server.vm_state),
                                  task_state_name(server.task_state))


def agent_may_set(current: C.Server, task_state: int, vm_state: int | None) -> bool:
    """May an agent's update move a server from `current` to `task_state`
    (and `vm_state`, when it sets one)? A repeat of an update that already
    landed (an unanswered first try) is allowed: it changes nothing."""
    task = TASKS.get(current.task_state)
    if task is None or task.via != "UpdateInstance":
        return False
    if task_state == current.task_state and vm_state in (None, current.vm_state):
        return True
    return task_state in task.next and (vm_state is None or vm_state in task.ends)


def migration_may_go(current: C.Server, task_state: int, vm_state: int) -> bool:
    """May a host's AdvanceMigration move the server on from its task state?"""
    task = TASKS.get(current.task_state)
    return (task is not None and task.via == "AdvanceMigration" and task_state in task.next
            and (vm_state in task.ends or task_state != NONE and vm_state == current.vm_state))


def agent_step(server: C.Server, running: str | None) -> str | None:
    """The agent's operation for a server on (or moving through) its host
    now, None for nothing to do. `running` names the work the agent already
    runs for it."""
    task = TASKS.get(server.task_state)
    if task is None or not server.host:
        return None
    if server.task_state == C.TASK_STATE_DELETING:
        return None if running == "delete" else "delete"   # delete overtakes anything
    if running is not None or server.task_state == NONE:
        return None
    if server.task_state in BUILD_TASKS and server.vm_state != BUILDING:
        return None
    if task.on_restart == RECOVER:
        return "recover"   # we (re)started in the middle of this build: clean up, give back
    return task.step
