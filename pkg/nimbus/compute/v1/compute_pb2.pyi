import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from nimbus.volume.v1 import volume_pb2 as _volume_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VmState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VM_STATE_UNSPECIFIED: _ClassVar[VmState]
    VM_STATE_BUILDING: _ClassVar[VmState]
    VM_STATE_ACTIVE: _ClassVar[VmState]
    VM_STATE_STOPPED: _ClassVar[VmState]
    VM_STATE_PAUSED: _ClassVar[VmState]
    VM_STATE_SUSPENDED: _ClassVar[VmState]
    VM_STATE_RESIZED: _ClassVar[VmState]
    VM_STATE_ERROR: _ClassVar[VmState]
    VM_STATE_DELETED: _ClassVar[VmState]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_SCHEDULING: _ClassVar[TaskState]
    TASK_STATE_NETWORKING: _ClassVar[TaskState]
    TASK_STATE_BLOCK_DEVICE_MAPPING: _ClassVar[TaskState]
    TASK_STATE_SPAWNING: _ClassVar[TaskState]
    TASK_STATE_DELETING: _ClassVar[TaskState]
    TASK_STATE_RESIZE_PREP: _ClassVar[TaskState]
    TASK_STATE_RESIZE_MIGRATING: _ClassVar[TaskState]
    TASK_STATE_RESIZE_MIGRATED: _ClassVar[TaskState]
    TASK_STATE_RESIZE_FINISH: _ClassVar[TaskState]
    TASK_STATE_RESIZE_REVERTING: _ClassVar[TaskState]
    TASK_STATE_RESIZE_CONFIRMING: _ClassVar[TaskState]
    TASK_STATE_POWERING_OFF: _ClassVar[TaskState]
    TASK_STATE_POWERING_ON: _ClassVar[TaskState]
    TASK_STATE_REBOOTING: _ClassVar[TaskState]
    TASK_STATE_REBOOTING_HARD: _ClassVar[TaskState]

class PowerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_STATE_UNSPECIFIED: _ClassVar[PowerState]
    POWER_STATE_RUNNING: _ClassVar[PowerState]
    POWER_STATE_PAUSED: _ClassVar[PowerState]
    POWER_STATE_SHUTDOWN: _ClassVar[PowerState]
    POWER_STATE_CRASHED: _ClassVar[PowerState]
    POWER_STATE_SUSPENDED: _ClassVar[PowerState]

class RebootType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REBOOT_TYPE_UNSPECIFIED: _ClassVar[RebootType]
    REBOOT_TYPE_SOFT: _ClassVar[RebootType]
    REBOOT_TYPE_HARD: _ClassVar[RebootType]

class ImageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_STATUS_UNSPECIFIED: _ClassVar[ImageStatus]
    IMAGE_STATUS_QUEUED: _ClassVar[ImageStatus]
    IMAGE_STATUS_SAVING: _ClassVar[ImageStatus]
    IMAGE_STATUS_ACTIVE: _ClassVar[ImageStatus]
    IMAGE_STATUS_KILLED: _ClassVar[ImageStatus]
VM_STATE_UNSPECIFIED: VmState
VM_STATE_BUILDING: VmState
VM_STATE_ACTIVE: VmState
VM_STATE_STOPPED: VmState
VM_STATE_PAUSED: VmState
VM_STATE_SUSPENDED: VmState
VM_STATE_RESIZED: VmState
VM_STATE_ERROR: VmState
VM_STATE_DELETED: VmState
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_SCHEDULING: TaskState
TASK_STATE_NETWORKING: TaskState
TASK_STATE_BLOCK_DEVICE_MAPPING: TaskState
TASK_STATE_SPAWNING: TaskState
TASK_STATE_DELETING: TaskState
TASK_STATE_RESIZE_PREP: TaskState
TASK_STATE_RESIZE_MIGRATING: TaskState
TASK_STATE_RESIZE_MIGRATED: TaskState
TASK_STATE_RESIZE_FINISH: TaskState
TASK_STATE_RESIZE_REVERTING: TaskState
TASK_STATE_RESIZE_CONFIRMING: TaskState
TASK_STATE_POWERING_OFF: TaskState
TASK_STATE_POWERING_ON: TaskState
TASK_STATE_REBOOTING: TaskState
TASK_STATE_REBOOTING_HARD: TaskState
POWER_STATE_UNSPECIFIED: PowerState
POWER_STATE_RUNNING: PowerState
POWER_STATE_PAUSED: PowerState
POWER_STATE_SHUTDOWN: PowerState
POWER_STATE_CRASHED: PowerState
POWER_STATE_SUSPENDED: PowerState
REBOOT_TYPE_UNSPECIFIED: RebootType
REBOOT_TYPE_SOFT: RebootType
REBOOT_TYPE_HARD: RebootType
IMAGE_STATUS_UNSPECIFIED: ImageStatus
IMAGE_STATUS_QUEUED: ImageStatus
IMAGE_STATUS_SAVING: ImageStatus
IMAGE_STATUS_ACTIVE: ImageStatus
IMAGE_STATUS_KILLED: ImageStatus

class Fault(_message.Message):
    __slots__ = ("code", "message", "details", "created_at")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    details: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., details: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Flavor(_message.Message):
    __slots__ = ("id", "name", "vcpus", "ram_mb", "disk_gb", "ephemeral_gb", "swap_mb", "is_public", "extra_specs")
    class ExtraSpecsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_GB_FIELD_NUMBER: _ClassVar[int]
    SWAP_MB_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    EXTRA_SPECS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int
    swap_mb: int
    is_public: bool
    extra_specs: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., vcpus: _Optional[int] = ..., ram_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ..., ephemeral_gb: _Optional[int] = ..., swap_mb: _Optional[int] = ..., is_public: _Optional[bool] = ..., extra_specs: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Server(_message.Message):
    __slots__ = ("id", "name", "project_id", "user_id", "vm_state", "task_state", "power_state", "host", "flavor_ref", "image_ref", "flavor", "fault", "reservation_id", "launch_index", "created_at", "updated_at", "launched_at", "metadata", "config_drive", "key_name", "security_groups", "access_ipv4", "access_ipv6", "availability_zone", "description", "server_group", "addresses")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AddressList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AddressList, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    VM_STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_STATE_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAUNCHED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DRIVE_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_IPV4_FIELD_NUMBER: _ClassVar[int]
    ACCESS_IPV6_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUP_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    user_id: str
    vm_state: VmState
    task_state: TaskState
    power_state: PowerState
    host: str
    flavor_ref: str
    image_ref: str
    flavor: Flavor
    fault: Fault
    reservation_id: str
    launch_index: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    launched_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    config_drive: bool
    key_name: str
    security_groups: _containers.RepeatedScalarFieldContainer[str]
    access_ipv4: str
    access_ipv6: str
    availability_zone: str
    description: str
    server_group: str
    addresses: _containers.MessageMap[str, AddressList]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., vm_state: _Optional[_Union[VmState, str]] = ..., task_state: _Optional[_Union[TaskState, str]] = ..., power_state: _Optional[_Union[PowerState, str]] = ..., host: _Optional[str] = ..., flavor_ref: _Optional[str] = ..., image_ref: _Optional[str] = ..., flavor: _Optional[_Union[Flavor, _Mapping]] = ..., fault: _Optional[_Union[Fault, _Mapping]] = ..., reservation_id: _Optional[str] = ..., launch_index: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., launched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., config_drive: _Optional[bool] = ..., key_name: _Optional[str] = ..., security_groups: _Optional[_Iterable[str]] = ..., access_ipv4: _Optional[str] = ..., access_ipv6: _Optional[str] = ..., availability_zone: _Optional[str] = ..., description: _Optional[str] = ..., server_group: _Optional[str] = ..., addresses: _Optional[_Mapping[str, AddressList]] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("addr", "version", "mac", "type")
    ADDR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    addr: str
    version: int
    mac: str
    type: str
    def __init__(self, addr: _Optional[str] = ..., version: _Optional[int] = ..., mac: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class AddressList(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedCompositeFieldContainer[Address]
    def __init__(self, addresses: _Optional[_Iterable[_Union[Address, _Mapping]]] = ...) -> None: ...

class CreateServerRequest(_message.Message):
    __slots__ = ("name", "image_ref", "flavor_ref", "min_count", "max_count", "metadata", "config_drive", "user_data", "admin_pass", "personality", "security_groups", "networks", "networks_mode", "access_ipv4", "access_ipv6", "key_name", "availability_zone", "block_device_mapping", "block_device_mapping_v2", "return_reservation_id", "scheduler_hints", "kernel_id", "ramdisk_id", "description", "client_token")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    MIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DRIVE_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    ADMIN_PASS_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_MODE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_IPV4_FIELD_NUMBER: _ClassVar[int]
    ACCESS_IPV6_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DEVICE_MAPPING_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DEVICE_MAPPING_V2_FIELD_NUMBER: _ClassVar[int]
    RETURN_RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_HINTS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    RAMDISK_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    image_ref: str
    flavor_ref: str
    min_count: int
    max_count: int
    metadata: _containers.ScalarMap[str, str]
    config_drive: bool
    user_data: bytes
    admin_pass: str
    personality: _containers.RepeatedCompositeFieldContainer[Personality]
    security_groups: _containers.RepeatedScalarFieldContainer[str]
    networks: _containers.RepeatedCompositeFieldContainer[NetworkRequest]
    networks_mode: str
    access_ipv4: str
    access_ipv6: str
    key_name: str
    availability_zone: str
    block_device_mapping: _containers.RepeatedCompositeFieldContainer[BlockDeviceMappingLegacy]
    block_device_mapping_v2: _containers.RepeatedCompositeFieldContainer[BlockDeviceMapping]
    return_reservation_id: bool
    scheduler_hints: SchedulerHints
    kernel_id: str
    ramdisk_id: str
    description: str
    client_token: str
    def __init__(self, name: _Optional[str] = ..., image_ref: _Optional[str] = ..., flavor_ref: _Optional[str] = ..., min_count: _Optional[int] = ..., max_count: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., config_drive: _Optional[bool] = ..., user_data: _Optional[bytes] = ..., admin_pass: _Optional[str] = ..., personality: _Optional[_Iterable[_Union[Personality, _Mapping]]] = ..., security_groups: _Optional[_Iterable[str]] = ..., networks: _Optional[_Iterable[_Union[NetworkRequest, _Mapping]]] = ..., networks_mode: _Optional[str] = ..., access_ipv4: _Optional[str] = ..., access_ipv6: _Optional[str] = ..., key_name: _Optional[str] = ..., availability_zone: _Optional[str] = ..., block_device_mapping: _Optional[_Iterable[_Union[BlockDeviceMappingLegacy, _Mapping]]] = ..., block_device_mapping_v2: _Optional[_Iterable[_Union[BlockDeviceMapping, _Mapping]]] = ..., return_reservation_id: _Optional[bool] = ..., scheduler_hints: _Optional[_Union[SchedulerHints, _Mapping]] = ..., kernel_id: _Optional[str] = ..., ramdisk_id: _Optional[str] = ..., description: _Optional[str] = ..., client_token: _Optional[str] = ...) -> None: ...

class Personality(_message.Message):
    __slots__ = ("path", "contents")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    path: str
    contents: bytes
    def __init__(self, path: _Optional[str] = ..., contents: _Optional[bytes] = ...) -> None: ...

class NetworkRequest(_message.Message):
    __slots__ = ("uuid", "port", "fixed_ip")
    UUID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    port: str
    fixed_ip: str
    def __init__(self, uuid: _Optional[str] = ..., port: _Optional[str] = ..., fixed_ip: _Optional[str] = ...) -> None: ...

class SchedulerHints(_message.Message):
    __slots__ = ("group", "different_host", "same_host")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    DIFFERENT_HOST_FIELD_NUMBER: _ClassVar[int]
    SAME_HOST_FIELD_NUMBER: _ClassVar[int]
    group: str
    different_host: _containers.RepeatedScalarFieldContainer[str]
    same_host: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., different_host: _Optional[_Iterable[str]] = ..., same_host: _Optional[_Iterable[str]] = ...) -> None: ...

class BlockDeviceMappingLegacy(_message.Message):
    __slots__ = ("device_name", "volume_id", "snapshot_id", "volume_size", "delete_on_termination", "no_device", "virtual_name")
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_SIZE_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    NO_DEVICE_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_NAME_FIELD_NUMBER: _ClassVar[int]
    device_name: str
    volume_id: str
    snapshot_id: str
    volume_size: int
    delete_on_termination: str
    no_device: bool
    virtual_name: str
    def __init__(self, device_name: _Optional[str] = ..., volume_id: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., volume_size: _Optional[int] = ..., delete_on_termination: _Optional[str] = ..., no_device: _Optional[bool] = ..., virtual_name: _Optional[str] = ...) -> None: ...

class BlockDeviceMapping(_message.Message):
    __slots__ = ("boot_index", "has_boot_index", "uuid", "source_type", "destination_type", "volume_size", "device_name", "delete_on_termination", "guest_format", "disk_bus", "device_type", "no_device")
    BOOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    HAS_BOOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    GUEST_FORMAT_FIELD_NUMBER: _ClassVar[int]
    DISK_BUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    NO_DEVICE_FIELD_NUMBER: _ClassVar[int]
    boot_index: int
    has_boot_index: bool
    uuid: str
    source_type: str
    destination_type: str
    volume_size: int
    device_name: str
    delete_on_termination: bool
    guest_format: str
    disk_bus: str
    device_type: str
    no_device: bool
    def __init__(self, boot_index: _Optional[int] = ..., has_boot_index: _Optional[bool] = ..., uuid: _Optional[str] = ..., source_type: _Optional[str] = ..., destination_type: _Optional[str] = ..., volume_size: _Optional[int] = ..., device_name: _Optional[str] = ..., delete_on_termination: _Optional[bool] = ..., guest_format: _Optional[str] = ..., disk_bus: _Optional[str] = ..., device_type: _Optional[str] = ..., no_device: _Optional[bool] = ...) -> None: ...

class CreateServerResponse(_message.Message):
    __slots__ = ("servers", "reservation_id", "admin_pass")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_PASS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    reservation_id: str
    admin_pass: str
    def __init__(self, servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ..., reservation_id: _Optional[str] = ..., admin_pass: _Optional[str] = ...) -> None: ...

class GetServerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class ListServersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "all_projects", "name", "vm_state", "host", "reservation_id", "changes_since", "sort_key", "sort_dir")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VM_STATE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGES_SINCE_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_DIR_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    all_projects: bool
    name: str
    vm_state: VmState
    host: str
    reservation_id: str
    changes_since: _timestamp_pb2.Timestamp
    sort_key: str
    sort_dir: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., all_projects: _Optional[bool] = ..., name: _Optional[str] = ..., vm_state: _Optional[_Union[VmState, str]] = ..., host: _Optional[str] = ..., reservation_id: _Optional[str] = ..., changes_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sort_key: _Optional[str] = ..., sort_dir: _Optional[str] = ...) -> None: ...

class ListServersResponse(_message.Message):
    __slots__ = ("servers", "next_page_token")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    next_page_token: str
    def __init__(self, servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteServerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class ResizeServerRequest(_message.Message):
    __slots__ = ("id", "flavor_ref")
    ID_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    id: str
    flavor_ref: str
    def __init__(self, id: _Optional[str] = ..., flavor_ref: _Optional[str] = ...) -> None: ...

class ResizeServerResponse(_message.Message):
    __slots__ = ("server", "migration")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    server: Server
    migration: Migration
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ..., migration: _Optional[_Union[Migration, _Mapping]] = ...) -> None: ...

class ConfirmServerResizeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ConfirmServerResizeResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class RevertServerResizeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevertServerResizeResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class MigrateServerRequest(_message.Message):
    __slots__ = ("id", "host")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    id: str
    host: str
    def __init__(self, id: _Optional[str] = ..., host: _Optional[str] = ...) -> None: ...

class MigrateServerResponse(_message.Message):
    __slots__ = ("server", "migration")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    server: Server
    migration: Migration
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ..., migration: _Optional[_Union[Migration, _Mapping]] = ...) -> None: ...

class ListServerMigrationsRequest(_message.Message):
    __slots__ = ("id", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListServerMigrationsResponse(_message.Message):
    __slots__ = ("migrations", "next_page_token")
    MIGRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    migrations: _containers.RepeatedCompositeFieldContainer[Migration]
    next_page_token: str
    def __init__(self, migrations: _Optional[_Iterable[_Union[Migration, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Migration(_message.Message):
    __slots__ = ("id", "server_id", "project_id", "source_host", "dest_host", "old_flavor_id", "new_flavor_id", "status", "migration_type", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HOST_FIELD_NUMBER: _ClassVar[int]
    DEST_HOST_FIELD_NUMBER: _ClassVar[int]
    OLD_FLAVOR_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_FLAVOR_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    server_id: str
    project_id: str
    source_host: str
    dest_host: str
    old_flavor_id: str
    new_flavor_id: str
    status: str
    migration_type: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., server_id: _Optional[str] = ..., project_id: _Optional[str] = ..., source_host: _Optional[str] = ..., dest_host: _Optional[str] = ..., old_flavor_id: _Optional[str] = ..., new_flavor_id: _Optional[str] = ..., status: _Optional[str] = ..., migration_type: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StopServerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class StartServerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StartServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class RebootServerRequest(_message.Message):
    __slots__ = ("id", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: RebootType
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[RebootType, str]] = ...) -> None: ...

class RebootServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class GetConsoleOutputRequest(_message.Message):
    __slots__ = ("id", "length")
    ID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    length: int
    def __init__(self, id: _Optional[str] = ..., length: _Optional[int] = ...) -> None: ...

class GetConsoleOutputResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class WatchServersRequest(_message.Message):
    __slots__ = ("id", "all_projects")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    all_projects: bool
    def __init__(self, id: _Optional[str] = ..., all_projects: _Optional[bool] = ...) -> None: ...

class WatchServersResponse(_message.Message):
    __slots__ = ("type", "server")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchServersResponse.EventType]
        EVENT_TYPE_UPSERT: _ClassVar[WatchServersResponse.EventType]
        EVENT_TYPE_DELETED: _ClassVar[WatchServersResponse.EventType]
        EVENT_TYPE_SYNCED: _ClassVar[WatchServersResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchServersResponse.EventType
    EVENT_TYPE_UPSERT: WatchServersResponse.EventType
    EVENT_TYPE_DELETED: WatchServersResponse.EventType
    EVENT_TYPE_SYNCED: WatchServersResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    type: WatchServersResponse.EventType
    server: Server
    def __init__(self, type: _Optional[_Union[WatchServersResponse.EventType, str]] = ..., server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class ListFlavorsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlavorsResponse(_message.Message):
    __slots__ = ("flavors", "next_page_token")
    FLAVORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flavors: _containers.RepeatedCompositeFieldContainer[Flavor]
    next_page_token: str
    def __init__(self, flavors: _Optional[_Iterable[_Union[Flavor, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFlavorRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetFlavorResponse(_message.Message):
    __slots__ = ("flavor",)
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    flavor: Flavor
    def __init__(self, flavor: _Optional[_Union[Flavor, _Mapping]] = ...) -> None: ...

class CreateFlavorRequest(_message.Message):
    __slots__ = ("flavor",)
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    flavor: Flavor
    def __init__(self, flavor: _Optional[_Union[Flavor, _Mapping]] = ...) -> None: ...

class AddFlavorAccessRequest(_message.Message):
    __slots__ = ("flavor_ref", "project_id")
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    flavor_ref: str
    project_id: str
    def __init__(self, flavor_ref: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class AddFlavorAccessResponse(_message.Message):
    __slots__ = ("project_ids",)
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveFlavorAccessRequest(_message.Message):
    __slots__ = ("flavor_ref", "project_id")
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    flavor_ref: str
    project_id: str
    def __init__(self, flavor_ref: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class RemoveFlavorAccessResponse(_message.Message):
    __slots__ = ("project_ids",)
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListFlavorAccessRequest(_message.Message):
    __slots__ = ("flavor_ref", "page_size", "page_token")
    FLAVOR_REF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flavor_ref: str
    page_size: int
    page_token: str
    def __init__(self, flavor_ref: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlavorAccessResponse(_message.Message):
    __slots__ = ("project_ids", "next_page_token")
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, project_ids: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateFlavorResponse(_message.Message):
    __slots__ = ("flavor",)
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    flavor: Flavor
    def __init__(self, flavor: _Optional[_Union[Flavor, _Mapping]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "name", "status", "disk_format", "container_format", "size", "checksum", "min_ram_mb", "min_disk_gb", "visibility", "owner", "properties", "created_at")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DISK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    MIN_RAM_MB_FIELD_NUMBER: _ClassVar[int]
    MIN_DISK_GB_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: ImageStatus
    disk_format: str
    container_format: str
    size: int
    checksum: str
    min_ram_mb: int
    min_disk_gb: int
    visibility: str
    owner: str
    properties: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[ImageStatus, str]] = ..., disk_format: _Optional[str] = ..., container_format: _Optional[str] = ..., size: _Optional[int] = ..., checksum: _Optional[str] = ..., min_ram_mb: _Optional[int] = ..., min_disk_gb: _Optional[int] = ..., visibility: _Optional[str] = ..., owner: _Optional[str] = ..., properties: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images", "next_page_token")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    next_page_token: str
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetImageResponse(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class CreateImageRequest(_message.Message):
    __slots__ = ("image", "chunk")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    image: Image
    chunk: bytes
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class CreateImageResponse(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class UpdateImageRequest(_message.Message):
    __slots__ = ("ref", "name", "visibility")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    ref: str
    name: str
    visibility: str
    def __init__(self, ref: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[str] = ...) -> None: ...

class UpdateImageResponse(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class ImageMember(_message.Message):
    __slots__ = ("image_id", "member_id", "status", "created_at", "updated_at")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    member_id: str
    status: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, image_id: _Optional[str] = ..., member_id: _Optional[str] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddImageMemberRequest(_message.Message):
    __slots__ = ("image_id", "member_id")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    member_id: str
    def __init__(self, image_id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class AddImageMemberResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: ImageMember
    def __init__(self, member: _Optional[_Union[ImageMember, _Mapping]] = ...) -> None: ...

class RemoveImageMemberRequest(_message.Message):
    __slots__ = ("image_id", "member_id")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    member_id: str
    def __init__(self, image_id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class RemoveImageMemberResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListImageMembersRequest(_message.Message):
    __slots__ = ("image_id",)
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    def __init__(self, image_id: _Optional[str] = ...) -> None: ...

class ListImageMembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[ImageMember]
    def __init__(self, members: _Optional[_Iterable[_Union[ImageMember, _Mapping]]] = ...) -> None: ...

class UpdateImageMemberRequest(_message.Message):
    __slots__ = ("image_id", "member_id", "status")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    member_id: str
    status: str
    def __init__(self, image_id: _Optional[str] = ..., member_id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class UpdateImageMemberResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: ImageMember
    def __init__(self, member: _Optional[_Union[ImageMember, _Mapping]] = ...) -> None: ...

class DeleteImageRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DeleteImageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DownloadImageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DownloadImageResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class AttachVolumeRequest(_message.Message):
    __slots__ = ("server_id", "volume_id", "device", "delete_on_termination")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    volume_id: str
    device: str
    delete_on_termination: bool
    def __init__(self, server_id: _Optional[str] = ..., volume_id: _Optional[str] = ..., device: _Optional[str] = ..., delete_on_termination: _Optional[bool] = ...) -> None: ...

class AttachVolumeResponse(_message.Message):
    __slots__ = ("attachment",)
    ATTACHMENT_FIELD_NUMBER: _ClassVar[int]
    attachment: _volume_pb2.VolumeAttachment
    def __init__(self, attachment: _Optional[_Union[_volume_pb2.VolumeAttachment, _Mapping]] = ...) -> None: ...

class DetachVolumeRequest(_message.Message):
    __slots__ = ("server_id", "volume_id")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    volume_id: str
    def __init__(self, server_id: _Optional[str] = ..., volume_id: _Optional[str] = ...) -> None: ...

class DetachVolumeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVolumeAttachmentsRequest(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    def __init__(self, server_id: _Optional[str] = ...) -> None: ...

class ListVolumeAttachmentsResponse(_message.Message):
    __slots__ = ("attachments",)
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    attachments: _containers.RepeatedCompositeFieldContainer[_volume_pb2.VolumeAttachment]
    def __init__(self, attachments: _Optional[_Iterable[_Union[_volume_pb2.VolumeAttachment, _Mapping]]] = ...) -> None: ...
