from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QuotaSet(_message.Message):
    __slots__ = ("instances", "cores", "ram", "key_pairs", "server_groups", "server_group_members", "injected_files", "injected_file_content_bytes", "injected_file_path_bytes", "metadata_items", "volumes", "gigabytes", "snapshots")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_FIELD_NUMBER: _ClassVar[int]
    KEY_PAIRS_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUP_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FILES_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FILE_CONTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FILE_PATH_BYTES_FIELD_NUMBER: _ClassVar[int]
    METADATA_ITEMS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    GIGABYTES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    instances: int
    cores: int
    ram: int
    key_pairs: int
    server_groups: int
    server_group_members: int
    injected_files: int
    injected_file_content_bytes: int
    injected_file_path_bytes: int
    metadata_items: int
    volumes: int
    gigabytes: int
    snapshots: int
    def __init__(self, instances: _Optional[int] = ..., cores: _Optional[int] = ..., ram: _Optional[int] = ..., key_pairs: _Optional[int] = ..., server_groups: _Optional[int] = ..., server_group_members: _Optional[int] = ..., injected_files: _Optional[int] = ..., injected_file_content_bytes: _Optional[int] = ..., injected_file_path_bytes: _Optional[int] = ..., metadata_items: _Optional[int] = ..., volumes: _Optional[int] = ..., gigabytes: _Optional[int] = ..., snapshots: _Optional[int] = ...) -> None: ...

class QuotaUsage(_message.Message):
    __slots__ = ("instances", "cores", "ram", "key_pairs", "server_groups", "volumes", "gigabytes", "snapshots")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_FIELD_NUMBER: _ClassVar[int]
    KEY_PAIRS_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    GIGABYTES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    instances: int
    cores: int
    ram: int
    key_pairs: int
    server_groups: int
    volumes: int
    gigabytes: int
    snapshots: int
    def __init__(self, instances: _Optional[int] = ..., cores: _Optional[int] = ..., ram: _Optional[int] = ..., key_pairs: _Optional[int] = ..., server_groups: _Optional[int] = ..., volumes: _Optional[int] = ..., gigabytes: _Optional[int] = ..., snapshots: _Optional[int] = ...) -> None: ...

class QuotaDetail(_message.Message):
    __slots__ = ("limit", "in_use")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    in_use: int
    def __init__(self, limit: _Optional[int] = ..., in_use: _Optional[int] = ...) -> None: ...

class QuotaUsageSet(_message.Message):
    __slots__ = ("instances", "cores", "ram", "key_pairs", "server_groups", "server_group_members", "injected_files", "injected_file_content_bytes", "injected_file_path_bytes", "metadata_items", "volumes", "gigabytes", "snapshots")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_FIELD_NUMBER: _ClassVar[int]
    KEY_PAIRS_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    SERVER_GROUP_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FILES_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FILE_CONTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FILE_PATH_BYTES_FIELD_NUMBER: _ClassVar[int]
    METADATA_ITEMS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    GIGABYTES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    instances: QuotaDetail
    cores: QuotaDetail
    ram: QuotaDetail
    key_pairs: QuotaDetail
    server_groups: QuotaDetail
    server_group_members: QuotaDetail
    injected_files: QuotaDetail
    injected_file_content_bytes: QuotaDetail
    injected_file_path_bytes: QuotaDetail
    metadata_items: QuotaDetail
    volumes: QuotaDetail
    gigabytes: QuotaDetail
    snapshots: QuotaDetail
    def __init__(self, instances: _Optional[_Union[QuotaDetail, _Mapping]] = ..., cores: _Optional[_Union[QuotaDetail, _Mapping]] = ..., ram: _Optional[_Union[QuotaDetail, _Mapping]] = ..., key_pairs: _Optional[_Union[QuotaDetail, _Mapping]] = ..., server_groups: _Optional[_Union[QuotaDetail, _Mapping]] = ..., server_group_members: _Optional[_Union[QuotaDetail, _Mapping]] = ..., injected_files: _Optional[_Union[QuotaDetail, _Mapping]] = ..., injected_file_content_bytes: _Optional[_Union[QuotaDetail, _Mapping]] = ..., injected_file_path_bytes: _Optional[_Union[QuotaDetail, _Mapping]] = ..., metadata_items: _Optional[_Union[QuotaDetail, _Mapping]] = ..., volumes: _Optional[_Union[QuotaDetail, _Mapping]] = ..., gigabytes: _Optional[_Union[QuotaDetail, _Mapping]] = ..., snapshots: _Optional[_Union[QuotaDetail, _Mapping]] = ...) -> None: ...

class GetQuotasRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class GetQuotasResponse(_message.Message):
    __slots__ = ("project_id", "quota_set", "overrides")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTA_SET_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    quota_set: QuotaSet
    overrides: QuotaSet
    def __init__(self, project_id: _Optional[str] = ..., quota_set: _Optional[_Union[QuotaSet, _Mapping]] = ..., overrides: _Optional[_Union[QuotaSet, _Mapping]] = ...) -> None: ...

class UpdateQuotasRequest(_message.Message):
    __slots__ = ("project_id", "quota_set", "force")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTA_SET_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    quota_set: QuotaSet
    force: bool
    def __init__(self, project_id: _Optional[str] = ..., quota_set: _Optional[_Union[QuotaSet, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class UpdateQuotasResponse(_message.Message):
    __slots__ = ("project_id", "quota_set", "overrides")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTA_SET_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    quota_set: QuotaSet
    overrides: QuotaSet
    def __init__(self, project_id: _Optional[str] = ..., quota_set: _Optional[_Union[QuotaSet, _Mapping]] = ..., overrides: _Optional[_Union[QuotaSet, _Mapping]] = ...) -> None: ...

class GetQuotaUsageRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class GetQuotaUsageResponse(_message.Message):
    __slots__ = ("project_id", "usage")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    usage: QuotaUsageSet
    def __init__(self, project_id: _Optional[str] = ..., usage: _Optional[_Union[QuotaUsageSet, _Mapping]] = ...) -> None: ...

class DeleteQuotasRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class DeleteQuotasResponse(_message.Message):
    __slots__ = ("project_id", "quota_set")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTA_SET_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    quota_set: QuotaSet
    def __init__(self, project_id: _Optional[str] = ..., quota_set: _Optional[_Union[QuotaSet, _Mapping]] = ...) -> None: ...
