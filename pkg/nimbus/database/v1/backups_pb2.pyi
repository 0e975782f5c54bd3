import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from nimbus.database.v1 import database_pb2 as _database_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKUP_STATUS_UNSPECIFIED: _ClassVar[BackupStatus]
    BACKUP_STATUS_NEW: _ClassVar[BackupStatus]
    BACKUP_STATUS_BUILDING: _ClassVar[BackupStatus]
    BACKUP_STATUS_COMPLETED: _ClassVar[BackupStatus]
    BACKUP_STATUS_FAILED: _ClassVar[BackupStatus]
BACKUP_STATUS_UNSPECIFIED: BackupStatus
BACKUP_STATUS_NEW: BackupStatus
BACKUP_STATUS_BUILDING: BackupStatus
BACKUP_STATUS_COMPLETED: BackupStatus
BACKUP_STATUS_FAILED: BackupStatus

class Backup(_message.Message):
    __slots__ = ("id", "name", "description", "project_id", "instance_id", "datastore", "status", "size_bytes", "checksum_sha256", "fail_reason", "tool", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_SHA256_FIELD_NUMBER: _ClassVar[int]
    FAIL_REASON_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    project_id: str
    instance_id: str
    datastore: _database_pb2.DatastoreRef
    status: BackupStatus
    size_bytes: int
    checksum_sha256: str
    fail_reason: str
    tool: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., project_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., datastore: _Optional[_Union[_database_pb2.DatastoreRef, _Mapping]] = ..., status: _Optional[_Union[BackupStatus, str]] = ..., size_bytes: _Optional[int] = ..., checksum_sha256: _Optional[str] = ..., fail_reason: _Optional[str] = ..., tool: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateBackupRequest(_message.Message):
    __slots__ = ("instance_id", "name", "description", "incremental_of")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_OF_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    name: str
    description: str
    incremental_of: str
    def __init__(self, instance_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., incremental_of: _Optional[str] = ...) -> None: ...

class CreateBackupResponse(_message.Message):
    __slots__ = ("backup",)
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    backup: Backup
    def __init__(self, backup: _Optional[_Union[Backup, _Mapping]] = ...) -> None: ...

class GetBackupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetBackupResponse(_message.Message):
    __slots__ = ("backup",)
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    backup: Backup
    def __init__(self, backup: _Optional[_Union[Backup, _Mapping]] = ...) -> None: ...

class ListBackupsRequest(_message.Message):
    __slots__ = ("instance_id", "datastore", "all_projects", "page_size", "page_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    datastore: str
    all_projects: bool
    page_size: int
    page_token: str
    def __init__(self, instance_id: _Optional[str] = ..., datastore: _Optional[str] = ..., all_projects: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBackupsResponse(_message.Message):
    __slots__ = ("backups", "next_page_token")
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[Backup]
    next_page_token: str
    def __init__(self, backups: _Optional[_Iterable[_Union[Backup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteBackupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteBackupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchBackupsRequest(_message.Message):
    __slots__ = ("id", "all_projects")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    all_projects: bool
    def __init__(self, id: _Optional[str] = ..., all_projects: _Optional[bool] = ...) -> None: ...

class WatchBackupsResponse(_message.Message):
    __slots__ = ("type", "backup")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchBackupsResponse.EventType]
        EVENT_TYPE_UPSERT: _ClassVar[WatchBackupsResponse.EventType]
        EVENT_TYPE_DELETED: _ClassVar[WatchBackupsResponse.EventType]
        EVENT_TYPE_SYNCED: _ClassVar[WatchBackupsResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchBackupsResponse.EventType
    EVENT_TYPE_UPSERT: WatchBackupsResponse.EventType
    EVENT_TYPE_DELETED: WatchBackupsResponse.EventType
    EVENT_TYPE_SYNCED: WatchBackupsResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    type: WatchBackupsResponse.EventType
    backup: Backup
    def __init__(self, type: _Optional[_Union[WatchBackupsResponse.EventType, str]] = ..., backup: _Optional[_Union[Backup, _Mapping]] = ...) -> None: ...
