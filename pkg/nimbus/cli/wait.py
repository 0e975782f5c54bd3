"""--wait: follow WatchServers (never poll) until every server reaches its
goal, with a rich progress line per server on stderr (and, outside a
terminal, one line per change instead of a live bar)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import grpc
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from nimbus.cli import errors
from nimbus.cli.output import console
from nimbus.compute.v1 import compute_pb2 as C

W = C.WatchServersResponse
BUILD_STEPS = (C.TASK_STATE_SCHEDULING, C.TASK_STATE_NETWORKING,
               C.TASK_STATE_BLOCK_DEVICE_MAPPING, C.TASK_STATE_SPAWNING)


def state_words(server: C.Server | None) -> str:
    if server is None:
        return "deleted"
    vm = C.VmState.Name(server.vm_state).removeprefix("VM_STATE_")
    if server.task_state == C.TASK_STATE_UNSPECIFIED:
        return vm
    return f"{vm}/{C.TaskState.Name(server.task_state).removeprefix('TASK_STATE_')}"


def settled(server: C.Server | None) -> bool:
    return server is not None and server.task_state == C.TASK_STATE_UNSPECIFIED


def failed(server: C.Server | None) -> bool:
    return settled(server) and server.vm_state == C.VM_STATE_ERROR


@dataclasses.dataclass(frozen=True)
class Goal:
    """What a --wait waits for: `reached(server)` (server None = deleted),
    and whether progress counts the build steps."""
    words: str
    reached: Callable[[C.Server | None], bool]
    build_steps: bool = False


def in_state(vm_state: int, words: str) -> Goal:
    return Goal(words, lambda s: settled(s) and s.vm_state == vm_state)


ACTIVE = Goal("ACTIVE", lambda s: settled(s) and s.vm_state == C.VM_STATE_ACTIVE, build_steps=True)
GONE = Goal("deleted", lambda s: s is None)


def _build_step(server: C.Server | None) -> int:
    if server is not None and server.task_state in BUILD_STEPS:
        return BUILD_STEPS.index(server.task_state)
    return len(BUILD_STEPS) + 1 if ACTIVE.reached(server) else 0


def wait(client, servers: list[C.Server], goal: Goal, timeout: float) -> list[C.Server | None]:
    """Until every server reaches `goal`; raises ServerFailed when one ends
    in ERROR and WaitTimedOut after `timeout` seconds. Returns the servers
    as last seen (None for deleted ones)."""
    latest: dict[str, C.Server | None] = {s.id: s for s in servers}
    names = {s.id: s.name or s.id for s in servers}
    out = console(stderr=True)
    live = out.is_terminal
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
                        console=out, disable=not live, transient=False)
    total = len(BUILD_STEPS) + 1 if goal.build_steps else None
    tasks = {sid: progress.add_task(names[sid], total=total, state=state_words(s))
             for sid, s in latest.items()}

    shown: dict[str, str] = {}

    def seen(sid: str, server: C.Server | None) -> None:
        latest[sid] = server
        words = state_words(server)
        progress.update(tasks[sid], state=words,
                        completed=_build_step(server) if goal.build_steps else None)
        if not live and shown.get(sid) != words:
            out.print(f"{names[sid]}: {words}")
        shown[sid] = words

    def done() -> bool:
        broken = [_fault(names[sid], s) for sid, s in latest.items()
                  if (failed(s) or s is None) and not goal.reached(s)]
        if broken:
            raise errors.ServerFailed("; ".join(broken))
        return all(goal.reached(s) for s in latest.values())

    for sid, server in list(latest.items()):   # as the call that started it answered
        seen(sid, server)
    request = C.WatchServersRequest(id=servers[0].id if len(servers) == 1 else "")
    call = client.stream(client.compute.WatchServers, request, timeout=timeout)
    listed: set[str] = set()
    try:
        with progress:
            for event in call:
                sid = event.server.id
                if event.type == W.EVENT_TYPE_SYNCED:
                    # Not listed: gone before the watch began, when waiting for
                    # that; a server just created may not be listed yet (the
                    # API's cache lags etcd a little), so then its UPSERT comes.
                    for gone in set(latest) - listed if goal.reached(None) else ():
                        seen(gone, None)
                elif sid in latest and event.type == W.EVENT_TYPE_UPSERT:
                    listed.add(sid)
                    seen(sid, event.server)
                elif sid in latest and event.type == W.EVENT_TYPE_DELETED:
                    seen(sid, None)
                else:
                    continue
                if done():
                    return [latest[s.id] for s in servers]
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        states = ", ".join(f"{names[sid]} {state_words(s)}" for sid, s in latest.items())
        raise errors.WaitTimedOut(f"not {goal.words} after {timeout:g} s: {states}") from None
    finally:
        call.cancel()
    raise errors.WaitTimedOut("the API ended the watch before the servers were "
                              + goal.words)


def _fault(name: str, server: C.Server | None) -> str:
    if server is None:
        return f"server {name} was deleted"
    message = server.fault.message or "no fault recorded"
    return f"server {name} ({server.id}) is ERROR: {message}"
