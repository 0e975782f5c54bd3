"""gRPC errors in plain words, and the exit code each status gives.

| exit | when |
|---|---|
| 0 | success |
| 1 | any other failure (INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED, ...) |
| 2 | usage or configuration error (a bad flag, no token, an unknown cloud) |
| 3 | INVALID_ARGUMENT, OUT_OF_RANGE |
| 4 | NOT_FOUND |
| 5 | ALREADY_EXISTS |
| 6 | UNAUTHENTICATED |
| 7 | PERMISSION_DENIED |
| 8 | RESOURCE_EXHAUSTED (quota) |
| 9 | FAILED_PRECONDITION, ABORTED (the resource is in the wrong state) |
| 10 | UNAVAILABLE, DEADLINE_EXCEEDED, and a --wait that timed out |
| 11 | a --wait ended with the server in ERROR (its fault is printed) or a backup FAILED |
"""

from __future__ import annotations

import click
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

S = grpc.StatusCode
EXIT_CODES = {
    S.INVALID_ARGUMENT: 3, S.OUT_OF_RANGE: 3,
    S.NOT_FOUND: 4,
    S.ALREADY_EXISTS: 5,
    S.UNAUTHENTICATED: 6,
    S.PERMISSION_DENIED: 7,
    S.RESOURCE_EXHAUSTED: 8,
    S.FAILED_PRECONDITION: 9, S.ABORTED: 9,
    S.UNAVAILABLE: 10, S.DEADLINE_EXCEEDED: 10,
}
OTHER_FAILURE = 1
TIMED_OUT = 10
SERVER_ERROR = 11


def exit_code(code: grpc.StatusCode) -> int:
    return EXIT_CODES.get(code, OTHER_FAILURE)


def _detail_lines(err: grpc.RpcError) -> list[str]:
    """One line per google.rpc detail the status carries."""
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # the trailer disagrees with the status: ignore it
        status = None
    if status is None:
        return []
    quota, fields, resources = [], [], []
    for detail in status.details:
        bad, failure, info = (error_details_pb2.BadRequest(), error_details_pb2.QuotaFailure(),
                              error_details_pb2.ResourceInfo())
        if detail.Unpack(bad):
            fields += [(v.field, v.description) for v in bad.field_violations]
        elif detail.Unpack(failure):
            quota += [v.description or f"quota exceeded for {v.subject}" for v in failure.violations]
        elif detail.Unpack(info):
            resources.append(info.description
                             or f"{info.resource_type} {info.resource_name!r} not found")
    # A quota refusal may name its field too, with the same words: say them once.
    fields = [f"{field}: {text}" for field, text in fields if not any(q in text for q in quota)]
    return quota + fields + resources


def describe(err: grpc.RpcError, api: str = "") -> str:
    """What went wrong, for a person: the details, else the status message."""
    code = err.code()
    lines = _detail_lines(err) or [err.details() or code.name.replace("_", " ").lower()]
    if code == S.UNAVAILABLE and api:
        lines[0] = f"the API at {api} is unavailable: {lines[0]}"
    if len(lines) == 1:
        return f"Error: {lines[0]} ({code.name})"
    return "\n".join([f"Error: {len(lines)} problems ({code.name}):"] + [f"  - {x}" for x in lines])


class ServerFailed(click.ClickException):
    """A --wait saw a server end in ERROR."""
    exit_code = SERVER_ERROR


class WaitTimedOut(click.ClickException):
    exit_code = TIMED_OUT
