import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATUS_UNSPECIFIED: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_BUILD: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_ACTIVE: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_ERROR: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_SHUTDOWN: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_REBOOT: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_DELETING: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_FAILED: _ClassVar[InstanceStatus]
    INSTANCE_STATUS_RESIZE: _ClassVar[InstanceStatus]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_NONE: _ClassVar[TaskStatus]
    TASK_STATUS_BUILDING: _ClassVar[TaskStatus]
    TASK_STATUS_DELETING: _ClassVar[TaskStatus]
    TASK_STATUS_REBOOTING: _ClassVar[TaskStatus]
    TASK_STATUS_BUILDING_ERROR_SERVER: _ClassVar[TaskStatus]
    TASK_STATUS_BUILDING_ERROR_VOLUME: _ClassVar[TaskStatus]
    TASK_STATUS_BUILDING_ERROR_SEC_GROUP: _ClassVar[TaskStatus]
    TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA: _ClassVar[TaskStatus]
    TASK_STATUS_BUILDING_ERROR_GUEST: _ClassVar[TaskStatus]
    TASK_STATUS_RESIZING: _ClassVar[TaskStatus]

class ServiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_STATUS_UNSPECIFIED: _ClassVar[ServiceStatus]
    SERVICE_STATUS_NEW: _ClassVar[ServiceStatus]
    SERVICE_STATUS_BUILDING: _ClassVar[ServiceStatus]
    SERVICE_STATUS_HEALTHY: _ClassVar[ServiceStatus]
    SERVICE_STATUS_SHUTDOWN: _ClassVar[ServiceStatus]
    SERVICE_STATUS_CRASHED: _ClassVar[ServiceStatus]
    SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT: _ClassVar[ServiceStatus]
    SERVICE_STATUS_FAILED: _ClassVar[ServiceStatus]
INSTANCE_STATUS_UNSPECIFIED: InstanceStatus
INSTANCE_STATUS_BUILD: InstanceStatus
INSTANCE_STATUS_ACTIVE: InstanceStatus
INSTANCE_STATUS_ERROR: InstanceStatus
INSTANCE_STATUS_SHUTDOWN: InstanceStatus
INSTANCE_STATUS_REBOOT: InstanceStatus
INSTANCE_STATUS_DELETING: InstanceStatus
INSTANCE_STATUS_FAILED: InstanceStatus
INSTANCE_STATUS_RESIZE: InstanceStatus
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_NONE: TaskStatus
TASK_STATUS_BUILDING: TaskStatus
TASK_STATUS_DELETING: TaskStatus
TASK_STATUS_REBOOTING: TaskStatus
TASK_STATUS_BUILDING_ERROR_SERVER: TaskStatus
TASK_STATUS_BUILDING_ERROR_VOLUME: TaskStatus
TASK_STATUS_BUILDING_ERROR_SEC_GROUP: TaskStatus
TASK_STATUS_BUILDING_ERROR_TIMEOUT_GA: TaskStatus
TASK_STATUS_BUILDING_ERROR_GUEST: TaskStatus
TASK_STATUS_RESIZING: TaskStatus
SERVICE_STATUS_UNSPECIFIED: ServiceStatus
SERVICE_STATUS_NEW: ServiceStatus
SERVICE_STATUS_BUILDING: ServiceStatus
SERVICE_STATUS_HEALTHY: ServiceStatus
SERVICE_STATUS_SHUTDOWN: ServiceStatus
SERVICE_STATUS_CRASHED: ServiceStatus
SERVICE_STATUS_FAILED_TIMEOUT_GUESTAGENT: ServiceStatus
SERVICE_STATUS_FAILED: ServiceStatus

class DatastoreRef(_message.Message):
    __slots__ = ("type", "version")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    type: str
    version: str
    def __init__(self, type: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class VolumeSpec(_message.Message):
    __slots__ = ("size_gb",)
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    size_gb: int
    def __init__(self, size_gb: _Optional[int] = ...) -> None: ...

class DatabaseSpec(_message.Message):
    __slots__ = ("name", "character_set", "collate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_SET_FIELD_NUMBER: _ClassVar[int]
    COLLATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    character_set: str
    collate: str
    def __init__(self, name: _Optional[str] = ..., character_set: _Optional[str] = ..., collate: _Optional[str] = ...) -> None: ...

class UserSpec(_message.Message):
    __slots__ = ("name", "password", "host", "databases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    host: str
    databases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., host: _Optional[str] = ..., databases: _Optional[_Iterable[str]] = ...) -> None: ...

class Fault(_message.Message):
    __slots__ = ("message", "details", "created_at")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    message: str
    details: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, message: _Optional[str] = ..., details: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "name", "project_id", "user_id", "status", "task_status", "service_status", "datastore", "flavor_ref", "volume", "locality", "availability_zone", "host", "port", "server_id", "server_group_id", "security_group_id", "fault", "root_enabled", "created_at", "updated_at", "nics", "replica_of")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASK_STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_STATUS_FIELD_NUMBER: _ClassVar[int]
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    ROOT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_OF_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    user_id: str
    status: InstanceStatus
    task_status: TaskStatus
    service_status: ServiceStatus
    datastore: DatastoreRef
    flavor_ref: str
    volume: VolumeSpec
    locality: str
    availability_zone: str
    host: str
    port: int
    server_id: str
    server_group_id: str
    security_group_id: str
    fault: Fault
    root_enabled: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    nics: _containers.RepeatedScalarFieldContainer[str]
    replica_of: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[InstanceStatus, str]] = ..., task_status: _Optional[_Union[TaskStatus, str]] = ..., service_status: _Optional[_Union[ServiceStatus, str]] = ..., datastore: _Optional[_Union[DatastoreRef, _Mapping]] = ..., flavor_ref: _Optional[str] = ..., volume: _Optional[_Union[VolumeSpec, _Mapping]] = ..., locality: _Optional[str] = ..., availability_zone: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., server_id: _Optional[str] = ..., server_group_id: _Optional[str] = ..., security_group_id: _Optional[str] = ..., fault: _Optional[_Union[Fault, _Mapping]] = ..., root_enabled: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nics: _Optional[_Iterable[str]] = ..., replica_of: _Optional[str] = ...) -> None: ...

class CreateInstanceRequest(_message.Message):
    __slots__ = ("name", "flavor_ref", "datastore", "volume", "databases", "users", "locality", "availability_zone", "nics", "replica_of", "replica_count", "restore_point")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_OF_FIELD_NUMBER: _ClassVar[int]
    REPLICA_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESTORE_POINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    flavor_ref: str
    datastore: DatastoreRef
    volume: VolumeSpec
    databases: _containers.RepeatedCompositeFieldContainer[DatabaseSpec]
    users: _containers.RepeatedCompositeFieldContainer[UserSpec]
    locality: str
    availability_zone: str
    nics: _containers.RepeatedScalarFieldContainer[str]
    replica_of: str
    replica_count: int
    restore_point: RestorePoint
    def __init__(self, name: _Optional[str] = ..., flavor_ref: _Optional[str] = ..., datastore: _Optional[_Union[DatastoreRef, _Mapping]] = ..., volume: _Optional[_Union[VolumeSpec, _Mapping]] = ..., databases: _Optional[_Iterable[_Union[DatabaseSpec, _Mapping]]] = ..., users: _Optional[_Iterable[_Union[UserSpec, _Mapping]]] = ..., locality: _Optional[str] = ..., availability_zone: _Optional[str] = ..., nics: _Optional[_Iterable[str]] = ..., replica_of: _Optional[str] = ..., replica_count: _Optional[int] = ..., restore_point: _Optional[_Union[RestorePoint, _Mapping]] = ...) -> None: ...

class RestorePoint(_message.Message):
    __slots__ = ("backup_ref",)
    BACKUP_REF_FIELD_NUMBER: _ClassVar[int]
    backup_ref: str
    def __init__(self, backup_ref: _Optional[str] = ...) -> None: ...

class CreateInstanceResponse(_message.Message):
    __slots__ = ("instance", "instances")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("all_projects", "page_size", "page_token")
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    all_projects: bool
    page_size: int
    page_token: str
    def __init__(self, all_projects: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class WatchInstancesRequest(_message.Message):
    __slots__ = ("id", "all_projects")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    all_projects: bool
    def __init__(self, id: _Optional[str] = ..., all_projects: _Optional[bool] = ...) -> None: ...

class WatchInstancesResponse(_message.Message):
    __slots__ = ("type", "instance")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchInstancesResponse.EventType]
        EVENT_TYPE_UPSERT: _ClassVar[WatchInstancesResponse.EventType]
        EVENT_TYPE_DELETED: _ClassVar[WatchInstancesResponse.EventType]
        EVENT_TYPE_SYNCED: _ClassVar[WatchInstancesResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchInstancesResponse.EventType
    EVENT_TYPE_UPSERT: WatchInstancesResponse.EventType
    EVENT_TYPE_DELETED: WatchInstancesResponse.EventType
    EVENT_TYPE_SYNCED: WatchInstancesResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    type: WatchInstancesResponse.EventType
    instance: Instance
    def __init__(self, type: _Optional[_Union[WatchInstancesResponse.EventType, str]] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class RestartInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RestartInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class ListDatabasesRequest(_message.Message):
    __slots__ = ("instance_id", "page_size", "page_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    page_size: int
    page_token: str
    def __init__(self, instance_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatabasesResponse(_message.Message):
    __slots__ = ("databases", "next_page_token")
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    databases: _containers.RepeatedCompositeFieldContainer[DatabaseSpec]
    next_page_token: str
    def __init__(self, databases: _Optional[_Iterable[_Union[DatabaseSpec, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateDatabaseRequest(_message.Message):
    __slots__ = ("instance_id", "databases")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    databases: _containers.RepeatedCompositeFieldContainer[DatabaseSpec]
    def __init__(self, instance_id: _Optional[str] = ..., databases: _Optional[_Iterable[_Union[DatabaseSpec, _Mapping]]] = ...) -> None: ...

class CreateDatabaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteDatabaseRequest(_message.Message):
    __slots__ = ("instance_id", "name")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    name: str
    def __init__(self, instance_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteDatabaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("instance_id", "page_size", "page_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    page_size: int
    page_token: str
    def __init__(self, instance_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users", "next_page_token")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserSpec]
    next_page_token: str
    def __init__(self, users: _Optional[_Iterable[_Union[UserSpec, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("instance_id", "users")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    users: _containers.RepeatedCompositeFieldContainer[UserSpec]
    def __init__(self, instance_id: _Optional[str] = ..., users: _Optional[_Iterable[_Union[UserSpec, _Mapping]]] = ...) -> None: ...

class CreateUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("instance_id", "name", "host")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    name: str
    host: str
    def __init__(self, instance_id: _Optional[str] = ..., name: _Optional[str] = ..., host: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GrantAccessRequest(_message.Message):
    __slots__ = ("instance_id", "user", "host", "databases")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    user: str
    host: str
    databases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instance_id: _Optional[str] = ..., user: _Optional[str] = ..., host: _Optional[str] = ..., databases: _Optional[_Iterable[str]] = ...) -> None: ...

class GrantAccessResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeAccessRequest(_message.Message):
    __slots__ = ("instance_id", "user", "host", "database")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    user: str
    host: str
    database: str
    def __init__(self, instance_id: _Optional[str] = ..., user: _Optional[str] = ..., host: _Optional[str] = ..., database: _Optional[str] = ...) -> None: ...

class RevokeAccessResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnableRootRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class EnableRootResponse(_message.Message):
    __slots__ = ("name", "password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class IsRootEnabledRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class IsRootEnabledResponse(_message.Message):
    __slots__ = ("root_enabled",)
    ROOT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    root_enabled: bool
    def __init__(self, root_enabled: _Optional[bool] = ...) -> None: ...

class DetachReplicaRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DetachReplicaResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class ResizeVolumeRequest(_message.Message):
    __slots__ = ("id", "size_gb")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    id: str
    size_gb: int
    def __init__(self, id: _Optional[str] = ..., size_gb: _Optional[int] = ...) -> None: ...

class ResizeVolumeResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class ResizeInstanceRequest(_message.Message):
    __slots__ = ("id", "flavor_ref")
    ID_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    id: str
    flavor_ref: str
    def __init__(self, id: _Optional[str] = ..., flavor_ref: _Optional[str] = ...) -> None: ...

class ResizeInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...
