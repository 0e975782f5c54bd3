"""Errors that cross the API: each maps to one gRPC status with rich details.

Handlers raise these; the server interceptor turns them into a status with a
google.rpc detail (BadRequest, QuotaFailure, ErrorInfo). Anything else that
escapes a handler is a bug and becomes INTERNAL (and is logged).
"""

from __future__ import annotations

import dataclasses

import grpc
from google.rpc import error_details_pb2

DOMAIN = "nimbus.dev"
# An error never echoes a huge input back: its message and every
# description are cut to this many characters.
MAX_MESSAGE = 1024


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit - 20] + f"… ({len(text)} chars)"


class NimbusError(Exception):
    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"

    def __init__(self, message: str):
        message = bounded(message)
        super().__init__(message)
        self.message = message

    def details(self) -> list:
        """google.rpc detail messages to attach to the status."""
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)]


class InvalidArgument(NimbusError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str):
        description = bounded(description, MAX_MESSAGE // 2)
        super().__init__(f"{field}: {description}")
        self.field = field   # names a request field: short by construction, kept exact
        self.description = description

    def details(self) -> list:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=self.field, description=self.description)
        return [error_details_pb2.BadRequest(field_violations=[violation])]


class NotFound(NimbusError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"

    def __init__(self, kind: str, ref: str):
        ref = bounded(ref, 256)
        super().__init__(f"{kind} {ref!r} not found")
        self.kind = kind
        self.ref = ref

    def details(self) -> list:
        return [error_details_pb2.ResourceInfo(resource_type=self.kind, resource_name=self.ref,
                                               description=self.message)]


class AlreadyExists(NimbusError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(NimbusError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class UnexpectedTaskState(FailedPrecondition):
    """A compare-and-swap found the record in a task state nobody expected."""
    reason = "UNEXPECTED_TASK_STATE"

    def __init__(self, instance_id: str, actual: str, expected: list[str]):
        super().__init__(
            f"server {instance_id} is in task state {actual}, expected one of {', '.join(expected)}")
        self.actual = actual


class InvalidState(FailedPrecondition):
    """An action that may not start from the server's current state (Nova's
    InstanceInvalidState), naming that state."""
    reason = "INSTANCE_INVALID_STATE"

    def __init__(self, action: str, instance_id: str, vm_state: str, task_state: str):
        super().__init__(f"Cannot '{action}' server {instance_id} while it is in vm_state "
                         f"{vm_state}, task_state {task_state}")
        self.vm_state = vm_state
        self.task_state = task_state


class ResourceExhausted(NimbusError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class Unauthenticated(NimbusError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(NimbusError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unavailable(NimbusError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One resource over its limit: `requested` more on top of `in_use`
    would exceed `limit` (in_use is 0 for limits checked per request)."""
    resource: str
    limit: int
    in_use: int
    requested: int

    def describe(self) -> str:
        if self.in_use:
            return (f"Quota exceeded for {self.resource}: Requested {self.requested}, "
                    f"but already used {self.in_use} of {self.limit} {self.resource}")
        return (f"Quota exceeded for {self.resource}: Requested {self.requested}, "
                f"but the limit is {self.limit}")


class QuotaExceeded(ResourceExhausted):
    """RESOURCE_EXHAUSTED with a google.rpc.QuotaFailure (one violation per
    resource: subject project:<id>, quota_metric nimbus.dev/<resource>,
    quota_value the limit, the numbers in the description), an ErrorInfo
    whose metadata holds <resource>_limit/_in_use/_requested, and, when the
    request field is known, a BadRequest naming it."""
    reason = "QUOTA_EXCEEDED"

    def __init__(self, project_id: str, violations: list[QuotaViolation], field: str = ""):
        super().__init__("; ".join(v.describe() for v in violations))
        self.project_id = project_id
        self.violations = list(violations)
        self.field = field

    @property
    def resources(self) -> list[str]:
        return [v.resource for v in self.violations]

    def details(self) -> list:
        failure = error_details_pb2.QuotaFailure(violations=[
            error_details_pb2.QuotaFailure.Violation(
                subject=f"project:{self.project_id}", description=v.describe(),
                quota_metric=f"{DOMAIN}/{v.resource}", quota_id=f"{v.resource}-per-project",
                quota_dimensions={"project_id": self.project_id}, quota_value=v.limit)
            for v in self.violations])
        metadata = {"project_id": self.project_id}
        for v in self.violations:
            metadata |= {f"{v.resource}_limit": str(v.limit), f"{v.resource}_in_use": str(v.in_use),
                         f"{v.resource}_requested": str(v.requested)}
        out = [failure, error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN,
                                                    metadata=metadata)]
        if self.field:
            out.append(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=self.field,
                                                            description=self.message)]))
        return out
