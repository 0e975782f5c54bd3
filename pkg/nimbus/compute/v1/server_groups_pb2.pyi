import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServerGroupRules(_message.Message):
    __slots__ = ("max_server_per_host",)
    MAX_SERVER_PER_HOST_FIELD_NUMBER: _ClassVar[int]
    max_server_per_host: int
    def __init__(self, max_server_per_host: _Optional[int] = ...) -> None: ...

class ServerGroup(_message.Message):
    __slots__ = ("id", "name", "project_id", "user_id", "policy", "rules", "members", "created_at")
    class Policy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        POLICY_UNSPECIFIED: _ClassVar[ServerGroup.Policy]
        POLICY_AFFINITY: _ClassVar[ServerGroup.Policy]
        POLICY_ANTI_AFFINITY: _ClassVar[ServerGroup.Policy]
        POLICY_SOFT_AFFINITY: _ClassVar[ServerGroup.Policy]
        POLICY_SOFT_ANTI_AFFINITY: _ClassVar[ServerGroup.Policy]
    POLICY_UNSPECIFIED: ServerGroup.Policy
    POLICY_AFFINITY: ServerGroup.Policy
    POLICY_ANTI_AFFINITY: ServerGroup.Policy
    POLICY_SOFT_AFFINITY: ServerGroup.Policy
    POLICY_SOFT_ANTI_AFFINITY: ServerGroup.Policy
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    user_id: str
    policy: ServerGroup.Policy
    rules: ServerGroupRules
    members: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., policy: _Optional[_Union[ServerGroup.Policy, str]] = ..., rules: _Optional[_Union[ServerGroupRules, _Mapping]] = ..., members: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateServerGroupRequest(_message.Message):
    __slots__ = ("name", "policy", "rules")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy: ServerGroup.Policy
    rules: ServerGroupRules
    def __init__(self, name: _Optional[str] = ..., policy: _Optional[_Union[ServerGroup.Policy, str]] = ..., rules: _Optional[_Union[ServerGroupRules, _Mapping]] = ...) -> None: ...

class CreateServerGroupResponse(_message.Message):
    __slots__ = ("server_group",)
    SERVER_GROUP_FIELD_NUMBER: _ClassVar[int]
    server_group: ServerGroup
    def __init__(self, server_group: _Optional[_Union[ServerGroup, _Mapping]] = ...) -> None: ...

class GetServerGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetServerGroupResponse(_message.Message):
    __slots__ = ("server_group",)
    SERVER_GROUP_FIELD_NUMBER: _ClassVar[int]
    server_group: ServerGroup
    def __init__(self, server_group: _Optional[_Union[ServerGroup, _Mapping]] = ...) -> None: ...

class ListServerGroupsRequest(_message.Message):
    __slots__ = ("all_projects", "page_size", "page_token")
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    all_projects: bool
    page_size: int
    page_token: str
    def __init__(self, all_projects: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListServerGroupsResponse(_message.Message):
    __slots__ = ("server_groups", "next_page_token")
    SERVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    server_groups: _containers.RepeatedCompositeFieldContainer[ServerGroup]
    next_page_token: str
    def __init__(self, server_groups: _Optional[_Iterable[_Union[ServerGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteServerGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteServerGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
