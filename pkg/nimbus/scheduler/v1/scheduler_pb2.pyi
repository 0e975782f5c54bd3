from nimbus.state.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestSpec(_message.Message):
    __slots__ = ("instance_id", "project_id", "resources", "ignore_hosts", "availability_zone", "forced_host", "group_id", "group_policy", "group_hosts", "group_max_per_host", "same_host", "different_host")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    IGNORE_HOSTS_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    FORCED_HOST_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_POLICY_FIELD_NUMBER: _ClassVar[int]
    GROUP_HOSTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_MAX_PER_HOST_FIELD_NUMBER: _ClassVar[int]
    SAME_HOST_FIELD_NUMBER: _ClassVar[int]
    DIFFERENT_HOST_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    project_id: str
    resources: _records_pb2.Resources
    ignore_hosts: _containers.RepeatedScalarFieldContainer[str]
    availability_zone: str
    forced_host: str
    group_id: str
    group_policy: str
    group_hosts: _containers.RepeatedScalarFieldContainer[str]
    group_max_per_host: int
    same_host: _containers.RepeatedScalarFieldContainer[str]
    different_host: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instance_id: _Optional[str] = ..., project_id: _Optional[str] = ..., resources: _Optional[_Union[_records_pb2.Resources, _Mapping]] = ..., ignore_hosts: _Optional[_Iterable[str]] = ..., availability_zone: _Optional[str] = ..., forced_host: _Optional[str] = ..., group_id: _Optional[str] = ..., group_policy: _Optional[str] = ..., group_hosts: _Optional[_Iterable[str]] = ..., group_max_per_host: _Optional[int] = ..., same_host: _Optional[_Iterable[str]] = ..., different_host: _Optional[_Iterable[str]] = ...) -> None: ...

class SelectDestinationsRequest(_message.Message):
    __slots__ = ("specs", "num_alternates")
    SPECS_FIELD_NUMBER: _ClassVar[int]
    NUM_ALTERNATES_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[RequestSpec]
    num_alternates: int
    def __init__(self, specs: _Optional[_Iterable[_Union[RequestSpec, _Mapping]]] = ..., num_alternates: _Optional[int] = ...) -> None: ...

class Selection(_message.Message):
    __slots__ = ("instance_id", "hosts", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    hosts: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, instance_id: _Optional[str] = ..., hosts: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SelectDestinationsResponse(_message.Message):
    __slots__ = ("selections",)
    SELECTIONS_FIELD_NUMBER: _ClassVar[int]
    selections: _containers.RepeatedCompositeFieldContainer[Selection]
    def __init__(self, selections: _Optional[_Iterable[_Union[Selection, _Mapping]]] = ...) -> None: ...
