import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from nimbus.database.v1 import backups_pb2 as _backups_pb2
from nimbus.database.v1 import database_pb2 as _database_pb2
from nimbus.database.v1 import guest_pb2 as _guest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_ACCEPTED: _ClassVar[Stage]
    STAGE_SERVER_REQUESTED: _ClassVar[Stage]
    STAGE_SERVER_ACTIVE: _ClassVar[Stage]
    STAGE_PREPARE_SENT: _ClassVar[Stage]
    STAGE_DONE: _ClassVar[Stage]
    STAGE_CLAIMED: _ClassVar[Stage]
STAGE_UNSPECIFIED: Stage
STAGE_ACCEPTED: Stage
STAGE_SERVER_REQUESTED: Stage
STAGE_SERVER_ACTIVE: Stage
STAGE_PREPARE_SENT: Stage
STAGE_DONE: Stage
STAGE_CLAIMED: Stage

class InstanceRecord(_message.Message):
    __slots__ = ("instance", "stage", "manager", "image", "databases", "users", "guest_id", "server_name", "deadline", "compute_host", "restore_backup_id", "resize_flavor_ref", "pool")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    GUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_HOST_FIELD_NUMBER: _ClassVar[int]
    RESTORE_BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    instance: _database_pb2.Instance
    stage: Stage
    manager: str
    image: str
    databases: _containers.RepeatedCompositeFieldContainer[_database_pb2.DatabaseSpec]
    users: _containers.RepeatedCompositeFieldContainer[_guest_pb2.GuestUser]
    guest_id: str
    server_name: str
    deadline: _timestamp_pb2.Timestamp
    compute_host: str
    restore_backup_id: str
    resize_flavor_ref: str
    pool: str
    def __init__(self, instance: _Optional[_Union[_database_pb2.Instance, _Mapping]] = ..., stage: _Optional[_Union[Stage, str]] = ..., manager: _Optional[str] = ..., image: _Optional[str] = ..., databases: _Optional[_Iterable[_Union[_database_pb2.DatabaseSpec, _Mapping]]] = ..., users: _Optional[_Iterable[_Union[_guest_pb2.GuestUser, _Mapping]]] = ..., guest_id: _Optional[str] = ..., server_name: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., compute_host: _Optional[str] = ..., restore_backup_id: _Optional[str] = ..., resize_flavor_ref: _Optional[str] = ..., pool: _Optional[str] = ...) -> None: ...

class GuestRecord(_message.Message):
    __slots__ = ("guest_id", "instance_id", "project_id", "credential_sha256", "rotated")
    GUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_SHA256_FIELD_NUMBER: _ClassVar[int]
    ROTATED_FIELD_NUMBER: _ClassVar[int]
    guest_id: str
    instance_id: str
    project_id: str
    credential_sha256: str
    rotated: bool
    def __init__(self, guest_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., project_id: _Optional[str] = ..., credential_sha256: _Optional[str] = ..., rotated: _Optional[bool] = ...) -> None: ...

class DbUsage(_message.Message):
    __slots__ = ("instances", "volumes", "backups")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    instances: int
    volumes: int
    backups: int
    def __init__(self, instances: _Optional[int] = ..., volumes: _Optional[int] = ..., backups: _Optional[int] = ...) -> None: ...

class DbQuota(_message.Message):
    __slots__ = ("instances", "volumes", "backups")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    instances: int
    volumes: int
    backups: int
    def __init__(self, instances: _Optional[int] = ..., volumes: _Optional[int] = ..., backups: _Optional[int] = ...) -> None: ...

class BackupRecord(_message.Message):
    __slots__ = ("backup", "location", "guest_id")
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    GUEST_ID_FIELD_NUMBER: _ClassVar[int]
    backup: _backups_pb2.Backup
    location: str
    guest_id: str
    def __init__(self, backup: _Optional[_Union[_backups_pb2.Backup, _Mapping]] = ..., location: _Optional[str] = ..., guest_id: _Optional[str] = ...) -> None: ...
