from google.protobuf import field_mask_pb2 as _field_mask_pb2
from nimbus.compute.v1 import compute_pb2 as _compute_pb2
from nimbus.compute.v1 import networks_pb2 as _networks_pb2
from nimbus.state.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdvanceMigrationRequest(_message.Message):
    __slots__ = ("host", "instance_id", "from_task_state", "power_state", "fault")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_TASK_STATE_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    from_task_state: _compute_pb2.TaskState
    power_state: _compute_pb2.PowerState
    fault: _compute_pb2.Fault
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ..., from_task_state: _Optional[_Union[_compute_pb2.TaskState, str]] = ..., power_state: _Optional[_Union[_compute_pb2.PowerState, str]] = ..., fault: _Optional[_Union[_compute_pb2.Fault, _Mapping]] = ...) -> None: ...

class AdvanceMigrationResponse(_message.Message):
    __slots__ = ("server", "revision", "migration_context")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    server: _compute_pb2.Server
    revision: int
    migration_context: _records_pb2.MigrationContext
    def __init__(self, server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ..., revision: _Optional[int] = ..., migration_context: _Optional[_Union[_records_pb2.MigrationContext, _Mapping]] = ...) -> None: ...

class FetchDisksRequest(_message.Message):
    __slots__ = ("host", "instance_id")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class DiskChunk(_message.Message):
    __slots__ = ("request_id", "host", "source_dir", "name", "data", "end_of_file", "size", "sha256", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_OF_FILE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    host: str
    source_dir: str
    name: str
    data: bytes
    end_of_file: bool
    size: int
    sha256: str
    error: str
    def __init__(self, request_id: _Optional[str] = ..., host: _Optional[str] = ..., source_dir: _Optional[str] = ..., name: _Optional[str] = ..., data: _Optional[bytes] = ..., end_of_file: _Optional[bool] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class FetchDisksResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: DiskChunk
    def __init__(self, chunk: _Optional[_Union[DiskChunk, _Mapping]] = ...) -> None: ...

class PushDisksRequest(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: DiskChunk
    def __init__(self, chunk: _Optional[_Union[DiskChunk, _Mapping]] = ...) -> None: ...

class PushDisksResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DiskRequest(_message.Message):
    __slots__ = ("request_id", "instance_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    instance_id: str
    def __init__(self, request_id: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class GetConsoleOutputRequest(_message.Message):
    __slots__ = ("instance_id", "length")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    length: int
    def __init__(self, instance_id: _Optional[str] = ..., length: _Optional[int] = ...) -> None: ...

class GetConsoleOutputResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class ConsoleRequest(_message.Message):
    __slots__ = ("request_id", "instance_id", "length")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    instance_id: str
    length: int
    def __init__(self, request_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., length: _Optional[int] = ...) -> None: ...

class ReturnConsoleOutputRequest(_message.Message):
    __slots__ = ("host", "request_id", "output", "error")
    HOST_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    host: str
    request_id: str
    output: str
    error: str
    def __init__(self, host: _Optional[str] = ..., request_id: _Optional[str] = ..., output: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ReturnConsoleOutputResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AllocateNetworksRequest(_message.Message):
    __slots__ = ("host", "instance_id")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class AllocateNetworksResponse(_message.Message):
    __slots__ = ("server", "revision", "vifs", "fault")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VIFS_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    server: _compute_pb2.Server
    revision: int
    vifs: _containers.RepeatedCompositeFieldContainer[_networks_pb2.Vif]
    fault: _compute_pb2.Fault
    def __init__(self, server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ..., revision: _Optional[int] = ..., vifs: _Optional[_Iterable[_Union[_networks_pb2.Vif, _Mapping]]] = ..., fault: _Optional[_Union[_compute_pb2.Fault, _Mapping]] = ...) -> None: ...

class CheckServerGroupRequest(_message.Message):
    __slots__ = ("host", "instance_id")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class CheckServerGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportNodeRequest(_message.Message):
    __slots__ = ("node", "lease_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    node: _records_pb2.NodeRecord
    lease_id: int
    def __init__(self, node: _Optional[_Union[_records_pb2.NodeRecord, _Mapping]] = ..., lease_id: _Optional[int] = ...) -> None: ...

class ReportNodeResponse(_message.Message):
    __slots__ = ("lease_id", "ttl_seconds")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    ttl_seconds: int
    def __init__(self, lease_id: _Optional[int] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class StreamAssignmentsRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class StreamAssignmentsResponse(_message.Message):
    __slots__ = ("type", "server", "revision", "user_data", "public_keys", "personality", "console", "migration_context", "disk_request", "volumes")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[StreamAssignmentsResponse.EventType]
        EVENT_TYPE_UPSERT: _ClassVar[StreamAssignmentsResponse.EventType]
        EVENT_TYPE_DELETED: _ClassVar[StreamAssignmentsResponse.EventType]
        EVENT_TYPE_SYNCED: _ClassVar[StreamAssignmentsResponse.EventType]
        EVENT_TYPE_CONSOLE_REQUEST: _ClassVar[StreamAssignmentsResponse.EventType]
        EVENT_TYPE_DISK_REQUEST: _ClassVar[StreamAssignmentsResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: StreamAssignmentsResponse.EventType
    EVENT_TYPE_UPSERT: StreamAssignmentsResponse.EventType
    EVENT_TYPE_DELETED: StreamAssignmentsResponse.EventType
    EVENT_TYPE_SYNCED: StreamAssignmentsResponse.EventType
    EVENT_TYPE_CONSOLE_REQUEST: StreamAssignmentsResponse.EventType
    EVENT_TYPE_DISK_REQUEST: StreamAssignmentsResponse.EventType
    class PublicKeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DISK_REQUEST_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    type: StreamAssignmentsResponse.EventType
    server: _compute_pb2.Server
    revision: int
    user_data: bytes
    public_keys: _containers.ScalarMap[str, str]
    personality: _containers.RepeatedCompositeFieldContainer[_compute_pb2.Personality]
    console: ConsoleRequest
    migration_context: _records_pb2.MigrationContext
    disk_request: DiskRequest
    volumes: _containers.RepeatedCompositeFieldContainer[_records_pb2.InstanceVolume]
    def __init__(self, type: _Optional[_Union[StreamAssignmentsResponse.EventType, str]] = ..., server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ..., revision: _Optional[int] = ..., user_data: _Optional[bytes] = ..., public_keys: _Optional[_Mapping[str, str]] = ..., personality: _Optional[_Iterable[_Union[_compute_pb2.Personality, _Mapping]]] = ..., console: _Optional[_Union[ConsoleRequest, _Mapping]] = ..., migration_context: _Optional[_Union[_records_pb2.MigrationContext, _Mapping]] = ..., disk_request: _Optional[_Union[DiskRequest, _Mapping]] = ..., volumes: _Optional[_Iterable[_Union[_records_pb2.InstanceVolume, _Mapping]]] = ...) -> None: ...

class UpdateInstanceRequest(_message.Message):
    __slots__ = ("host", "server", "update_mask", "expected_task_states")
    HOST_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TASK_STATES_FIELD_NUMBER: _ClassVar[int]
    host: str
    server: _compute_pb2.Server
    update_mask: _field_mask_pb2.FieldMask
    expected_task_states: _containers.RepeatedScalarFieldContainer[_compute_pb2.TaskState]
    def __init__(self, host: _Optional[str] = ..., server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_task_states: _Optional[_Iterable[_Union[_compute_pb2.TaskState, str]]] = ...) -> None: ...

class UpdateInstanceResponse(_message.Message):
    __slots__ = ("server", "revision")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    server: _compute_pb2.Server
    revision: int
    def __init__(self, server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class RescheduleInstanceRequest(_message.Message):
    __slots__ = ("host", "instance_id", "fault", "expected_task_states")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TASK_STATES_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    fault: _compute_pb2.Fault
    expected_task_states: _containers.RepeatedScalarFieldContainer[_compute_pb2.TaskState]
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ..., fault: _Optional[_Union[_compute_pb2.Fault, _Mapping]] = ..., expected_task_states: _Optional[_Iterable[_Union[_compute_pb2.TaskState, str]]] = ...) -> None: ...

class RescheduleInstanceResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: _compute_pb2.Server
    def __init__(self, server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ...) -> None: ...

class FinishDeleteInstanceRequest(_message.Message):
    __slots__ = ("host", "instance_id")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class FinishDeleteInstanceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CompleteVolumeAttachmentRequest(_message.Message):
    __slots__ = ("host", "instance_id", "volume_id", "detached", "error")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    volume_id: str
    detached: bool
    error: str
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ..., volume_id: _Optional[str] = ..., detached: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class CompleteVolumeAttachmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
