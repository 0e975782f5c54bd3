import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VolumeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOLUME_STATUS_UNSPECIFIED: _ClassVar[VolumeStatus]
    VOLUME_STATUS_CREATING: _ClassVar[VolumeStatus]
    VOLUME_STATUS_AVAILABLE: _ClassVar[VolumeStatus]
    VOLUME_STATUS_ATTACHING: _ClassVar[VolumeStatus]
    VOLUME_STATUS_IN_USE: _ClassVar[VolumeStatus]
    VOLUME_STATUS_DETACHING: _ClassVar[VolumeStatus]
    VOLUME_STATUS_EXTENDING: _ClassVar[VolumeStatus]
    VOLUME_STATUS_DELETING: _ClassVar[VolumeStatus]
    VOLUME_STATUS_ERROR: _ClassVar[VolumeStatus]
    VOLUME_STATUS_ERROR_DELETING: _ClassVar[VolumeStatus]
    VOLUME_STATUS_ERROR_EXTENDING: _ClassVar[VolumeStatus]

class SnapshotStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SNAPSHOT_STATUS_UNSPECIFIED: _ClassVar[SnapshotStatus]
    SNAPSHOT_STATUS_CREATING: _ClassVar[SnapshotStatus]
    SNAPSHOT_STATUS_AVAILABLE: _ClassVar[SnapshotStatus]
    SNAPSHOT_STATUS_DELETING: _ClassVar[SnapshotStatus]
    SNAPSHOT_STATUS_ERROR: _ClassVar[SnapshotStatus]
    SNAPSHOT_STATUS_ERROR_DELETING: _ClassVar[SnapshotStatus]
VOLUME_STATUS_UNSPECIFIED: VolumeStatus
VOLUME_STATUS_CREATING: VolumeStatus
VOLUME_STATUS_AVAILABLE: VolumeStatus
VOLUME_STATUS_ATTACHING: VolumeStatus
VOLUME_STATUS_IN_USE: VolumeStatus
VOLUME_STATUS_DETACHING: VolumeStatus
VOLUME_STATUS_EXTENDING: VolumeStatus
VOLUME_STATUS_DELETING: VolumeStatus
VOLUME_STATUS_ERROR: VolumeStatus
VOLUME_STATUS_ERROR_DELETING: VolumeStatus
VOLUME_STATUS_ERROR_EXTENDING: VolumeStatus
SNAPSHOT_STATUS_UNSPECIFIED: SnapshotStatus
SNAPSHOT_STATUS_CREATING: SnapshotStatus
SNAPSHOT_STATUS_AVAILABLE: SnapshotStatus
SNAPSHOT_STATUS_DELETING: SnapshotStatus
SNAPSHOT_STATUS_ERROR: SnapshotStatus
SNAPSHOT_STATUS_ERROR_DELETING: SnapshotStatus

class VolumeAttachment(_message.Message):
    __slots__ = ("id", "volume_id", "server_id", "device", "host", "attached_at", "delete_on_termination")
    ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    volume_id: str
    server_id: str
    device: str
    host: str
    attached_at: _timestamp_pb2.Timestamp
    delete_on_termination: bool
    def __init__(self, id: _Optional[str] = ..., volume_id: _Optional[str] = ..., server_id: _Optional[str] = ..., device: _Optional[str] = ..., host: _Optional[str] = ..., attached_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_on_termination: _Optional[bool] = ...) -> None: ...

class Volume(_message.Message):
    __slots__ = ("id", "name", "description", "project_id", "user_id", "size_gb", "status", "volume_type", "availability_zone", "metadata", "snapshot_id", "source_volume_id", "image_id", "bootable", "attachments", "created_at", "updated_at", "fault", "backend")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_TYPE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    BOOTABLE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    project_id: str
    user_id: str
    size_gb: int
    status: VolumeStatus
    volume_type: str
    availability_zone: str
    metadata: _containers.ScalarMap[str, str]
    snapshot_id: str
    source_volume_id: str
    image_id: str
    bootable: bool
    attachments: _containers.RepeatedCompositeFieldContainer[VolumeAttachment]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    fault: str
    backend: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., size_gb: _Optional[int] = ..., status: _Optional[_Union[VolumeStatus, str]] = ..., volume_type: _Optional[str] = ..., availability_zone: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., snapshot_id: _Optional[str] = ..., source_volume_id: _Optional[str] = ..., image_id: _Optional[str] = ..., bootable: _Optional[bool] = ..., attachments: _Optional[_Iterable[_Union[VolumeAttachment, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fault: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("id", "volume_id", "name", "description", "project_id", "user_id", "size_gb", "status", "metadata", "created_at", "updated_at", "fault")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    volume_id: str
    name: str
    description: str
    project_id: str
    user_id: str
    size_gb: int
    status: SnapshotStatus
    metadata: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    fault: str
    def __init__(self, id: _Optional[str] = ..., volume_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., size_gb: _Optional[int] = ..., status: _Optional[_Union[SnapshotStatus, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fault: _Optional[str] = ...) -> None: ...

class VolumeType(_message.Message):
    __slots__ = ("id", "name", "description", "backend", "is_default", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    backend: str
    is_default: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., backend: _Optional[str] = ..., is_default: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateVolumeRequest(_message.Message):
    __slots__ = ("name", "size_gb", "volume_type", "availability_zone", "description", "metadata", "snapshot_id", "source_volume_id", "image_ref")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    VOLUME_TYPE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_gb: int
    volume_type: str
    availability_zone: str
    description: str
    metadata: _containers.ScalarMap[str, str]
    snapshot_id: str
    source_volume_id: str
    image_ref: str
    def __init__(self, name: _Optional[str] = ..., size_gb: _Optional[int] = ..., volume_type: _Optional[str] = ..., availability_zone: _Optional[str] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., snapshot_id: _Optional[str] = ..., source_volume_id: _Optional[str] = ..., image_ref: _Optional[str] = ...) -> None: ...

class CreateVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class GetVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ("name", "status", "all_projects", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: VolumeStatus
    all_projects: bool
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[VolumeStatus, str]] = ..., all_projects: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes", "next_page_token")
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    next_page_token: str
    def __init__(self, volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateVolumeRequest(_message.Message):
    __slots__ = ("id", "name", "description", "metadata", "update_metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    metadata: _containers.ScalarMap[str, str]
    update_metadata: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., update_metadata: _Optional[bool] = ...) -> None: ...

class UpdateVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class ExtendVolumeRequest(_message.Message):
    __slots__ = ("id", "new_size_gb")
    ID_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    id: str
    new_size_gb: int
    def __init__(self, id: _Optional[str] = ..., new_size_gb: _Optional[int] = ...) -> None: ...

class ExtendVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class DeleteVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class WatchVolumesRequest(_message.Message):
    __slots__ = ("id", "all_projects")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    all_projects: bool
    def __init__(self, id: _Optional[str] = ..., all_projects: _Optional[bool] = ...) -> None: ...

class WatchVolumesResponse(_message.Message):
    __slots__ = ("type", "volume")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchVolumesResponse.EventType]
        EVENT_TYPE_UPSERT: _ClassVar[WatchVolumesResponse.EventType]
        EVENT_TYPE_DELETED: _ClassVar[WatchVolumesResponse.EventType]
        EVENT_TYPE_SYNCED: _ClassVar[WatchVolumesResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchVolumesResponse.EventType
    EVENT_TYPE_UPSERT: WatchVolumesResponse.EventType
    EVENT_TYPE_DELETED: WatchVolumesResponse.EventType
    EVENT_TYPE_SYNCED: WatchVolumesResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    type: WatchVolumesResponse.EventType
    volume: Volume
    def __init__(self, type: _Optional[_Union[WatchVolumesResponse.EventType, str]] = ..., volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("volume_id", "name", "description", "force", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    name: str
    description: str
    force: bool
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, volume_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., force: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class GetSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("volume_id", "all_projects", "page_size", "page_token")
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    all_projects: bool
    page_size: int
    page_token: str
    def __init__(self, volume_id: _Optional[str] = ..., all_projects: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots", "next_page_token")
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    next_page_token: str
    def __init__(self, snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class WatchSnapshotsRequest(_message.Message):
    __slots__ = ("id", "all_projects")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    all_projects: bool
    def __init__(self, id: _Optional[str] = ..., all_projects: _Optional[bool] = ...) -> None: ...

class WatchSnapshotsResponse(_message.Message):
    __slots__ = ("type", "snapshot")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchSnapshotsResponse.EventType]
        EVENT_TYPE_UPSERT: _ClassVar[WatchSnapshotsResponse.EventType]
        EVENT_TYPE_DELETED: _ClassVar[WatchSnapshotsResponse.EventType]
        EVENT_TYPE_SYNCED: _ClassVar[WatchSnapshotsResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchSnapshotsResponse.EventType
    EVENT_TYPE_UPSERT: WatchSnapshotsResponse.EventType
    EVENT_TYPE_DELETED: WatchSnapshotsResponse.EventType
    EVENT_TYPE_SYNCED: WatchSnapshotsResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    type: WatchSnapshotsResponse.EventType
    snapshot: Snapshot
    def __init__(self, type: _Optional[_Union[WatchSnapshotsResponse.EventType, str]] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class CreateVolumeTypeRequest(_message.Message):
    __slots__ = ("name", "description", "backend")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    backend: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class CreateVolumeTypeResponse(_message.Message):
    __slots__ = ("volume_type",)
    VOLUME_TYPE_FIELD_NUMBER: _ClassVar[int]
    volume_type: VolumeType
    def __init__(self, volume_type: _Optional[_Union[VolumeType, _Mapping]] = ...) -> None: ...

class ListVolumeTypesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVolumeTypesResponse(_message.Message):
    __slots__ = ("volume_types", "next_page_token")
    VOLUME_TYPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    volume_types: _containers.RepeatedCompositeFieldContainer[VolumeType]
    next_page_token: str
    def __init__(self, volume_types: _Optional[_Iterable[_Union[VolumeType, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
