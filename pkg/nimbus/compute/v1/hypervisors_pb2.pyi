import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hypervisor(_message.Message):
    __slots__ = ("host", "state", "status", "disabled_reason", "availability_zone", "hypervisor_type", "vcpus", "memory_mb", "disk_gb", "vcpus_used", "memory_mb_used", "disk_gb_used", "cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio", "running_servers", "started_at")
    HOST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    VCPUS_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_USED_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_USED_FIELD_NUMBER: _ClassVar[int]
    CPU_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    RAM_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    DISK_ALLOCATION_RATIO_FIELD_NUMBER: _ClassVar[int]
    RUNNING_SERVERS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    host: str
    state: str
    status: str
    disabled_reason: str
    availability_zone: str
    hypervisor_type: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    vcpus_used: int
    memory_mb_used: int
    disk_gb_used: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    running_servers: int
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, host: _Optional[str] = ..., state: _Optional[str] = ..., status: _Optional[str] = ..., disabled_reason: _Optional[str] = ..., availability_zone: _Optional[str] = ..., hypervisor_type: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ..., vcpus_used: _Optional[int] = ..., memory_mb_used: _Optional[int] = ..., disk_gb_used: _Optional[int] = ..., cpu_allocation_ratio: _Optional[float] = ..., ram_allocation_ratio: _Optional[float] = ..., disk_allocation_ratio: _Optional[float] = ..., running_servers: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListHypervisorsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListHypervisorsResponse(_message.Message):
    __slots__ = ("hypervisors", "next_page_token")
    HYPERVISORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hypervisors: _containers.RepeatedCompositeFieldContainer[Hypervisor]
    next_page_token: str
    def __init__(self, hypervisors: _Optional[_Iterable[_Union[Hypervisor, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetHypervisorRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class GetHypervisorResponse(_message.Message):
    __slots__ = ("hypervisor",)
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    hypervisor: Hypervisor
    def __init__(self, hypervisor: _Optional[_Union[Hypervisor, _Mapping]] = ...) -> None: ...

class DisableComputeServiceRequest(_message.Message):
    __slots__ = ("host", "reason")
    HOST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    host: str
    reason: str
    def __init__(self, host: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisableComputeServiceResponse(_message.Message):
    __slots__ = ("hypervisor",)
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    hypervisor: Hypervisor
    def __init__(self, hypervisor: _Optional[_Union[Hypervisor, _Mapping]] = ...) -> None: ...

class EnableComputeServiceRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class EnableComputeServiceResponse(_message.Message):
    __slots__ = ("hypervisor",)
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    hypervisor: Hypervisor
    def __init__(self, hypervisor: _Optional[_Union[Hypervisor, _Mapping]] = ...) -> None: ...
