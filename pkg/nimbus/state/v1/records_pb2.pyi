import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from nimbus.compute.v1 import compute_pb2 as _compute_pb2
from nimbus.volume.v1 import volume_pb2 as _volume_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Resources(_message.Message):
    __slots__ = ("vcpus", "memory_mb", "disk_gb")
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    vcpus: int
    memory_mb: int
    disk_gb: int
    def __init__(self, vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ...) -> None: ...

class InstanceRecord(_message.Message):
    __slots__ = ("server", "alternates", "tried_hosts", "request_id", "task_changed_at", "user_data", "personality", "public_keys", "networks", "networks_mode", "block_devices", "scheduler_hints", "forced_host", "group_policy", "group_max_per_host", "build_started_at", "migration_context", "build_inputs_apart", "volumes")
    class PublicKeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVER_FIELD_NUMBER: _ClassVar[int]
    ALTERNATES_FIELD_NUMBER: _ClassVar[int]
    TRIED_HOSTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_MODE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DEVICES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_HINTS_FIELD_NUMBER: _ClassVar[int]
    FORCED_HOST_FIELD_NUMBER: _ClassVar[int]
    GROUP_POLICY_FIELD_NUMBER: _ClassVar[int]
    GROUP_MAX_PER_HOST_FIELD_NUMBER: _ClassVar[int]
    BUILD_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BUILD_INPUTS_APART_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    server: _compute_pb2.Server
    alternates: _containers.RepeatedScalarFieldContainer[str]
    tried_hosts: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    task_changed_at: _timestamp_pb2.Timestamp
    user_data: bytes
    personality: _containers.RepeatedCompositeFieldContainer[_compute_pb2.Personality]
    public_keys: _containers.ScalarMap[str, str]
    networks: _containers.RepeatedCompositeFieldContainer[_compute_pb2.NetworkRequest]
    networks_mode: str
    block_devices: _containers.RepeatedCompositeFieldContainer[_compute_pb2.BlockDeviceMapping]
    scheduler_hints: _compute_pb2.SchedulerHints
    forced_host: str
    group_policy: str
    group_max_per_host: int
    build_started_at: _timestamp_pb2.Timestamp
    migration_context: MigrationContext
    build_inputs_apart: bool
    volumes: _containers.RepeatedCompositeFieldContainer[InstanceVolume]
    def __init__(self, server: _Optional[_Union[_compute_pb2.Server, _Mapping]] = ..., alternates: _Optional[_Iterable[str]] = ..., tried_hosts: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., task_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_data: _Optional[bytes] = ..., personality: _Optional[_Iterable[_Union[_compute_pb2.Personality, _Mapping]]] = ..., public_keys: _Optional[_Mapping[str, str]] = ..., networks: _Optional[_Iterable[_Union[_compute_pb2.NetworkRequest, _Mapping]]] = ..., networks_mode: _Optional[str] = ..., block_devices: _Optional[_Iterable[_Union[_compute_pb2.BlockDeviceMapping, _Mapping]]] = ..., scheduler_hints: _Optional[_Union[_compute_pb2.SchedulerHints, _Mapping]] = ..., forced_host: _Optional[str] = ..., group_policy: _Optional[str] = ..., group_max_per_host: _Optional[int] = ..., build_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., migration_context: _Optional[_Union[MigrationContext, _Mapping]] = ..., build_inputs_apart: _Optional[bool] = ..., volumes: _Optional[_Iterable[_Union[InstanceVolume, _Mapping]]] = ...) -> None: ...

class MigrationContext(_message.Message):
    __slots__ = ("migration_id", "source_host", "dest_host", "old_flavor", "new_flavor", "old_vm_state", "upsize_vcpus", "upsize_ram_mb", "downsize_vcpus", "downsize_ram_mb", "tried_hosts", "requested_host", "dest_reverted")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HOST_FIELD_NUMBER: _ClassVar[int]
    DEST_HOST_FIELD_NUMBER: _ClassVar[int]
    OLD_FLAVOR_FIELD_NUMBER: _ClassVar[int]
    NEW_FLAVOR_FIELD_NUMBER: _ClassVar[int]
    OLD_VM_STATE_FIELD_NUMBER: _ClassVar[int]
    UPSIZE_VCPUS_FIELD_NUMBER: _ClassVar[int]
    UPSIZE_RAM_MB_FIELD_NUMBER: _ClassVar[int]
    DOWNSIZE_VCPUS_FIELD_NUMBER: _ClassVar[int]
    DOWNSIZE_RAM_MB_FIELD_NUMBER: _ClassVar[int]
    TRIED_HOSTS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_HOST_FIELD_NUMBER: _ClassVar[int]
    DEST_REVERTED_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    source_host: str
    dest_host: str
    old_flavor: _compute_pb2.Flavor
    new_flavor: _compute_pb2.Flavor
    old_vm_state: _compute_pb2.VmState
    upsize_vcpus: int
    upsize_ram_mb: int
    downsize_vcpus: int
    downsize_ram_mb: int
    tried_hosts: _containers.RepeatedScalarFieldContainer[str]
    requested_host: str
    dest_reverted: bool
    def __init__(self, migration_id: _Optional[str] = ..., source_host: _Optional[str] = ..., dest_host: _Optional[str] = ..., old_flavor: _Optional[_Union[_compute_pb2.Flavor, _Mapping]] = ..., new_flavor: _Optional[_Union[_compute_pb2.Flavor, _Mapping]] = ..., old_vm_state: _Optional[_Union[_compute_pb2.VmState, str]] = ..., upsize_vcpus: _Optional[int] = ..., upsize_ram_mb: _Optional[int] = ..., downsize_vcpus: _Optional[int] = ..., downsize_ram_mb: _Optional[int] = ..., tried_hosts: _Optional[_Iterable[str]] = ..., requested_host: _Optional[str] = ..., dest_reverted: _Optional[bool] = ...) -> None: ...

class MigrationRecord(_message.Message):
    __slots__ = ("migration",)
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    migration: _compute_pb2.Migration
    def __init__(self, migration: _Optional[_Union[_compute_pb2.Migration, _Mapping]] = ...) -> None: ...

class NodeRecord(_message.Message):
    __slots__ = ("host", "hypervisor_type", "total", "reserved", "cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio", "disabled", "started_at")
    HOST_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    CPU_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    RAM_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    DISK_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    host: str
    hypervisor_type: str
    total: Resources
    reserved: Resources
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    disabled: bool
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, host: _Optional[str] = ..., hypervisor_type: _Optional[str] = ..., total: _Optional[_Union[Resources, _Mapping]] = ..., reserved: _Optional[_Union[Resources, _Mapping]] = ..., cpu_allocation_ratio: _Optional[float] = ..., ram_allocation_ratio: _Optional[float] = ..., disk_allocation_ratio: _Optional[float] = ..., disabled: _Optional[bool] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProviderUsage(_message.Message):
    __slots__ = ("host", "used", "consumers")
    HOST_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    host: str
    used: Resources
    consumers: int
    def __init__(self, host: _Optional[str] = ..., used: _Optional[_Union[Resources, _Mapping]] = ..., consumers: _Optional[int] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("consumer_id", "host", "project_id", "resources")
    CONSUMER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    consumer_id: str
    host: str
    project_id: str
    resources: Resources
    def __init__(self, consumer_id: _Optional[str] = ..., host: _Optional[str] = ..., project_id: _Optional[str] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ...) -> None: ...

class InstanceActionEvent(_message.Message):
    __slots__ = ("event", "start_time", "finish_time", "result", "host", "details")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    event: str
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    result: str
    host: str
    details: str
    def __init__(self, event: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[str] = ..., host: _Optional[str] = ..., details: _Optional[str] = ...) -> None: ...

class InstanceAction(_message.Message):
    __slots__ = ("request_id", "instance_id", "action", "project_id", "user_id", "start_time", "message", "events")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    instance_id: str
    action: str
    project_id: str
    user_id: str
    start_time: _timestamp_pb2.Timestamp
    message: str
    events: _containers.RepeatedCompositeFieldContainer[InstanceActionEvent]
    def __init__(self, request_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., action: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., events: _Optional[_Iterable[_Union[InstanceActionEvent, _Mapping]]] = ...) -> None: ...

class ImageRecord(_message.Message):
    __slots__ = ("image", "location")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    image: _compute_pb2.Image
    location: str
    def __init__(self, image: _Optional[_Union[_compute_pb2.Image, _Mapping]] = ..., location: _Optional[str] = ...) -> None: ...

class Ec2Id(_message.Message):
    __slots__ = ("ec2_id", "uuid")
    EC2_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    ec2_id: str
    uuid: str
    def __init__(self, ec2_id: _Optional[str] = ..., uuid: _Optional[str] = ...) -> None: ...

class ClientToken(_message.Message):
    __slots__ = ("request_sha256", "reservation_id", "server_ids", "created_at")
    REQUEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    request_sha256: bytes
    reservation_id: str
    server_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, request_sha256: _Optional[bytes] = ..., reservation_id: _Optional[str] = ..., server_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ComputeServiceStatus(_message.Message):
    __slots__ = ("host", "disabled", "disabled_reason", "updated_at")
    HOST_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    host: str
    disabled: bool
    disabled_reason: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, host: _Optional[str] = ..., disabled: _Optional[bool] = ..., disabled_reason: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BuildInputs(_message.Message):
    __slots__ = ("user_data", "personality")
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    user_data: bytes
    personality: _containers.RepeatedCompositeFieldContainer[_compute_pb2.Personality]
    def __init__(self, user_data: _Optional[bytes] = ..., personality: _Optional[_Iterable[_Union[_compute_pb2.Personality, _Mapping]]] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("reservation_id", "project_id", "template", "build_inputs", "server_ids", "written", "numbered", "created_at")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    BUILD_INPUTS_FIELD_NUMBER: _ClassVar[int]
    SERVER_IDS_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    NUMBERED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    project_id: str
    template: InstanceRecord
    build_inputs: BuildInputs
    server_ids: _containers.RepeatedScalarFieldContainer[str]
    written: int
    numbered: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, reservation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., template: _Optional[_Union[InstanceRecord, _Mapping]] = ..., build_inputs: _Optional[_Union[BuildInputs, _Mapping]] = ..., server_ids: _Optional[_Iterable[str]] = ..., written: _Optional[int] = ..., numbered: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VolumeRecord(_message.Message):
    __slots__ = ("volume", "extend_to_gb", "snapshot_ids")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    EXTEND_TO_GB_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_IDS_FIELD_NUMBER: _ClassVar[int]
    volume: _volume_pb2.Volume
    extend_to_gb: int
    snapshot_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, volume: _Optional[_Union[_volume_pb2.Volume, _Mapping]] = ..., extend_to_gb: _Optional[int] = ..., snapshot_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SnapshotRecord(_message.Message):
    __slots__ = ("snapshot", "backend")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    snapshot: _volume_pb2.Snapshot
    backend: str
    def __init__(self, snapshot: _Optional[_Union[_volume_pb2.Snapshot, _Mapping]] = ..., backend: _Optional[str] = ...) -> None: ...

class VolumeConnection(_message.Message):
    __slots__ = ("driver", "path", "name", "monitors")
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MONITORS_FIELD_NUMBER: _ClassVar[int]
    driver: str
    path: str
    name: str
    monitors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, driver: _Optional[str] = ..., path: _Optional[str] = ..., name: _Optional[str] = ..., monitors: _Optional[_Iterable[str]] = ...) -> None: ...

class InstanceVolume(_message.Message):
    __slots__ = ("volume_id", "attachment_id", "device", "state", "connection", "delete_on_termination", "error")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[InstanceVolume.State]
        STATE_ATTACHING: _ClassVar[InstanceVolume.State]
        STATE_ATTACHED: _ClassVar[InstanceVolume.State]
        STATE_DETACHING: _ClassVar[InstanceVolume.State]
    STATE_UNSPECIFIED: InstanceVolume.State
    STATE_ATTACHING: InstanceVolume.State
    STATE_ATTACHED: InstanceVolume.State
    STATE_DETACHING: InstanceVolume.State
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    attachment_id: str
    device: str
    state: InstanceVolume.State
    connection: VolumeConnection
    delete_on_termination: bool
    error: str
    def __init__(self, volume_id: _Optional[str] = ..., attachment_id: _Optional[str] = ..., device: _Optional[str] = ..., state: _Optional[_Union[InstanceVolume.State, str]] = ..., connection: _Optional[_Union[VolumeConnection, _Mapping]] = ..., delete_on_termination: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...
