from nimbus.compute.v1 import compute_pb2 as _compute_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListMigrationsRequest(_message.Message):
    __slots__ = ("host", "status", "server_id", "page_size", "page_token")
    HOST_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    host: str
    status: str
    server_id: str
    page_size: int
    page_token: str
    def __init__(self, host: _Optional[str] = ..., status: _Optional[str] = ..., server_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMigrationsResponse(_message.Message):
    __slots__ = ("migrations", "next_page_token")
    MIGRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    migrations: _containers.RepeatedCompositeFieldContainer[_compute_pb2.Migration]
    next_page_token: str
    def __init__(self, migrations: _Optional[_Iterable[_Union[_compute_pb2.Migration, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
