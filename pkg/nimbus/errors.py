"""Errors that cross the API: each maps to one gRPC status with rich details.

Handlers raise these; the server interceptor turns them into a status with a
google.rpc detail (BadRequest, QuotaFailure, ErrorInfo). Anything else that
escapes a handler is a bug and becomes INTERNAL (and is logged).
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2

DOMAIN = "nimbus.dev"


class NimbusError(Exception):
    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def details(self) -> list:
        """google.rpc detail messages to attach to the status."""
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)]


class InvalidArgument(NimbusError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str):
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description

    def details(self) -> list:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=self.field, description=self.description)
        return [error_details_pb2.BadRequest(field_violations=[violation])]


class NotFound(NimbusError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"

    def __init__(self, kind: str, ref: str):
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
