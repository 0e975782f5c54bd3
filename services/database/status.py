"""The one table of what a database instance shows: Trove's API status from
(task status, the guest's service status), and which tasks are failures."""

from __future__ import annotations

from nimbus.database.v1 import database_pb2 as D

FAILED_TASKS = frozenset({
    D.TASK_STATUS_BUILDING_ERROR_SERVER, D.TASK_STATUS_BUILDING_ERROR_VOLUME,
    D.TASK_STATUS_BUILDING_ERROR_SEC_GROUP, D.TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA,
    D.TASK_STATUS_BUILDING_ERROR_GUEST})

BY_TASK = {
    D.TASK_STATUS_BUILDING: D.INSTANCE_STATUS_BUILD,
    D.TASK_STATUS_DELETING: D.INSTANCE_STATUS_DELETING,
    D.TASK_STATUS_REBOOTING: D.INSTANCE_STATUS_REBOOT,
    D.TASK_STATUS_RESIZING: D.INSTANCE_STATUS_RESIZE,
    **{task: D.INSTANCE_STATUS_ERROR for task in FAILED_TASKS},
}
BY_SERVICE = {   # with no task running
    D.SERVICE_STATUS_HEALTHY: D.INSTANCE_STATUS_ACTIVE,
    D.SERVICE_STATUS_SHUTDOWN: D.INSTANCE_STATUS_SHUTDOWN,
    D.SERVICE_STATUS_CRASHED: D.INSTANCE_STATUS_SHUTDOWN,
    D.SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT: D.INSTANCE_STATUS_FAILED,
    D.SERVICE_STATUS_FAILED: D.INSTANCE_STATUS_ERROR,
}

# Commands to the guest (users, databases, root, restart) need this status.
READY = D.INSTANCE_STATUS_ACTIVE


def refresh(instance: D.Instance) -> None:
    """Set instance.status from its task and service status."""
    instance.status = BY_TASK.get(instance.task_status) or BY_SERVICE.get(
        instance.service_status, D.INSTANCE_STATUS_BUILD)


def name(status: int) -> str:
    return D.InstanceStatus.Name(status).removeprefix("INSTANCE_STATUS_")
