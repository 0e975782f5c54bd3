from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatastoreVersion(_message.Message):
    __slots__ = ("name", "manager", "image", "active", "flavors", "volume_support", "max_accepted_volume_size", "warm_pool_size", "warm_pool_flavor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    FLAVORS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    MAX_ACCEPTED_VOLUME_SIZE_FIELD_NUMBER: _ClassVar[int]
    WARM_POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    WARM_POOL_FLAVOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    manager: str
    image: str
    active: bool
    flavors: _containers.RepeatedScalarFieldContainer[str]
    volume_support: bool
    max_accepted_volume_size: int
    warm_pool_size: int
    warm_pool_flavor: str
    def __init__(self, name: _Optional[str] = ..., manager: _Optional[str] = ..., image: _Optional[str] = ..., active: _Optional[bool] = ..., flavors: _Optional[_Iterable[str]] = ..., volume_support: _Optional[bool] = ..., max_accepted_volume_size: _Optional[int] = ..., warm_pool_size: _Optional[int] = ..., warm_pool_flavor: _Optional[str] = ...) -> None: ...

class Datastore(_message.Message):
    __slots__ = ("name", "default_version", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    default_version: str
    versions: _containers.RepeatedCompositeFieldContainer[DatastoreVersion]
    def __init__(self, name: _Optional[str] = ..., default_version: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[DatastoreVersion, _Mapping]]] = ...) -> None: ...

class CreateDatastoreRequest(_message.Message):
    __slots__ = ("datastore",)
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    datastore: Datastore
    def __init__(self, datastore: _Optional[_Union[Datastore, _Mapping]] = ...) -> None: ...

class CreateDatastoreResponse(_message.Message):
    __slots__ = ("datastore",)
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    datastore: Datastore
    def __init__(self, datastore: _Optional[_Union[Datastore, _Mapping]] = ...) -> None: ...

class GetDatastoreRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDatastoreResponse(_message.Message):
    __slots__ = ("datastore",)
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    datastore: Datastore
    def __init__(self, datastore: _Optional[_Union[Datastore, _Mapping]] = ...) -> None: ...

class ListDatastoresRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatastoresResponse(_message.Message):
    __slots__ = ("datastores", "next_page_token")
    DATASTORES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datastores: _containers.RepeatedCompositeFieldContainer[Datastore]
    next_page_token: str
    def __init__(self, datastores: _Optional[_Iterable[_Union[Datastore, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDatastoreRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteDatastoreResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PutVersionRequest(_message.Message):
    __slots__ = ("datastore", "version")
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    datastore: str
    version: DatastoreVersion
    def __init__(self, datastore: _Optional[str] = ..., version: _Optional[_Union[DatastoreVersion, _Mapping]] = ...) -> None: ...

class PutVersionResponse(_message.Message):
    __slots__ = ("datastore",)
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    datastore: Datastore
    def __init__(self, datastore: _Optional[_Union[Datastore, _Mapping]] = ...) -> None: ...

class DeleteVersionRequest(_message.Message):
    __slots__ = ("datastore", "version")
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    datastore: str
    version: str
    def __init__(self, datastore: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class DeleteVersionResponse(_message.Message):
    __slots__ = ("datastore",)
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    datastore: Datastore
    def __init__(self, datastore: _Optional[_Union[Datastore, _Mapping]] = ...) -> None: ...

class SetDefaultVersionRequest(_message.Message):
    __slots__ = ("datastore", "version")
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    datastore: str
    version: str
    def __init__(self, datastore: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class SetDefaultVersionResponse(_message.Message):
    __slots__ = ("datastore",)
    DATASTORE_FIELD_NUMBER: _ClassVar[int]
    datastore: Datastore
    def __init__(self, datastore: _Optional[_Union[Datastore, _Mapping]] = ...) -> None: ...
