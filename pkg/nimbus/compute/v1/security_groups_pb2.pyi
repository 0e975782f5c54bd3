import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SecurityGroupRule(_message.Message):
    __slots__ = ("id", "security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "description", "created_at")
    class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DIRECTION_UNSPECIFIED: _ClassVar[SecurityGroupRule.Direction]
        DIRECTION_INGRESS: _ClassVar[SecurityGroupRule.Direction]
        DIRECTION_EGRESS: _ClassVar[SecurityGroupRule.Direction]
    DIRECTION_UNSPECIFIED: SecurityGroupRule.Direction
    DIRECTION_INGRESS: SecurityGroupRule.Direction
    DIRECTION_EGRESS: SecurityGroupRule.Direction
    class EtherType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ETHER_TYPE_UNSPECIFIED: _ClassVar[SecurityGroupRule.EtherType]
        ETHER_TYPE_IPV4: _ClassVar[SecurityGroupRule.EtherType]
        ETHER_TYPE_IPV6: _ClassVar[SecurityGroupRule.EtherType]
    ETHER_TYPE_UNSPECIFIED: SecurityGroupRule.EtherType
    ETHER_TYPE_IPV4: SecurityGroupRule.EtherType
    ETHER_TYPE_IPV6: SecurityGroupRule.EtherType
    class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PROTOCOL_UNSPECIFIED: _ClassVar[SecurityGroupRule.Protocol]
        PROTOCOL_ANY: _ClassVar[SecurityGroupRule.Protocol]
        PROTOCOL_TCP: _ClassVar[SecurityGroupRule.Protocol]
        PROTOCOL_UDP: _ClassVar[SecurityGroupRule.Protocol]
        PROTOCOL_ICMP: _ClassVar[SecurityGroupRule.Protocol]
    PROTOCOL_UNSPECIFIED: SecurityGroupRule.Protocol
    PROTOCOL_ANY: SecurityGroupRule.Protocol
    PROTOCOL_TCP: SecurityGroupRule.Protocol
    PROTOCOL_UDP: SecurityGroupRule.Protocol
    PROTOCOL_ICMP: SecurityGroupRule.Protocol
    ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    ETHERTYPE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MAX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    security_group_id: str
    direction: SecurityGroupRule.Direction
    ethertype: SecurityGroupRule.EtherType
    protocol: SecurityGroupRule.Protocol
    port_range_min: int
    port_range_max: int
    remote_ip_prefix: str
    remote_group_id: str
    description: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., security_group_id: _Optional[str] = ..., direction: _Optional[_Union[SecurityGroupRule.Direction, str]] = ..., ethertype: _Optional[_Union[SecurityGroupRule.EtherType, str]] = ..., protocol: _Optional[_Union[SecurityGroupRule.Protocol, str]] = ..., port_range_min: _Optional[int] = ..., port_range_max: _Optional[int] = ..., remote_ip_prefix: _Optional[str] = ..., remote_group_id: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SecurityGroup(_message.Message):
    __slots__ = ("id", "name", "description", "project_id", "rules", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    project_id: str
    rules: _containers.RepeatedCompositeFieldContainer[SecurityGroupRule]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., project_id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[SecurityGroupRule, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSecurityGroupRequest(_message.Message):
    __slots__ = ("name", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateSecurityGroupResponse(_message.Message):
    __slots__ = ("security_group",)
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    security_group: SecurityGroup
    def __init__(self, security_group: _Optional[_Union[SecurityGroup, _Mapping]] = ...) -> None: ...

class GetSecurityGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetSecurityGroupResponse(_message.Message):
    __slots__ = ("security_group",)
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    security_group: SecurityGroup
    def __init__(self, security_group: _Optional[_Union[SecurityGroup, _Mapping]] = ...) -> None: ...

class ListSecurityGroupsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSecurityGroupsResponse(_message.Message):
    __slots__ = ("security_groups", "next_page_token")
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    security_groups: _containers.RepeatedCompositeFieldContainer[SecurityGroup]
    next_page_token: str
    def __init__(self, security_groups: _Optional[_Iterable[_Union[SecurityGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSecurityGroupRequest(_message.Message):
    __slots__ = ("id", "name", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class UpdateSecurityGroupResponse(_message.Message):
    __slots__ = ("security_group",)
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    security_group: SecurityGroup
    def __init__(self, security_group: _Optional[_Union[SecurityGroup, _Mapping]] = ...) -> None: ...

class DeleteSecurityGroupRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteSecurityGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateSecurityGroupRuleRequest(_message.Message):
    __slots__ = ("security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "description")
    SECURITY_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    ETHERTYPE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MAX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    security_group_id: str
    direction: SecurityGroupRule.Direction
    ethertype: SecurityGroupRule.EtherType
    protocol: SecurityGroupRule.Protocol
    port_range_min: int
    port_range_max: int
    remote_ip_prefix: str
    remote_group_id: str
    description: str
    def __init__(self, security_group_id: _Optional[str] = ..., direction: _Optional[_Union[SecurityGroupRule.Direction, str]] = ..., ethertype: _Optional[_Union[SecurityGroupRule.EtherType, str]] = ..., protocol: _Optional[_Union[SecurityGroupRule.Protocol, str]] = ..., port_range_min: _Optional[int] = ..., port_range_max: _Optional[int] = ..., remote_ip_prefix: _Optional[str] = ..., remote_group_id: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateSecurityGroupRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: SecurityGroupRule
    def __init__(self, rule: _Optional[_Union[SecurityGroupRule, _Mapping]] = ...) -> None: ...

class DeleteSecurityGroupRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteSecurityGroupRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
