import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceAction(_message.Message):
    __slots__ = ("request_id", "server_id", "action", "project_id", "user_id", "start_time", "updated_at", "message", "events")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    server_id: str
    action: str
    project_id: str
    user_id: str
    start_time: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    message: str
    events: _containers.RepeatedCompositeFieldContainer[InstanceActionEvent]
    def __init__(self, request_id: _Optional[str] = ..., server_id: _Optional[str] = ..., action: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., events: _Optional[_Iterable[_Union[InstanceActionEvent, _Mapping]]] = ...) -> None: ...

class InstanceActionEvent(_message.Message):
    __slots__ = ("event", "start_time", "finish_time", "result", "host", "host_id", "traceback", "details")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    event: str
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    result: str
    host: str
    host_id: str
    traceback: str
    details: str
    def __init__(self, event: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[str] = ..., host: _Optional[str] = ..., host_id: _Optional[str] = ..., traceback: _Optional[str] = ..., details: _Optional[str] = ...) -> None: ...

class ListInstanceActionsRequest(_message.Message):
    __slots__ = ("server_id", "page_size", "page_token")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    page_size: int
    page_token: str
    def __init__(self, server_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInstanceActionsResponse(_message.Message):
    __slots__ = ("actions", "next_page_token")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[InstanceAction]
    next_page_token: str
    def __init__(self, actions: _Optional[_Iterable[_Union[InstanceAction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetInstanceActionRequest(_message.Message):
    __slots__ = ("server_id", "request_id")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    request_id: str
    def __init__(self, server_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetInstanceActionResponse(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: InstanceAction
    def __init__(self, action: _Optional[_Union[InstanceAction, _Mapping]] = ...) -> None: ...
