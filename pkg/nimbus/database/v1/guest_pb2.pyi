from nimbus.database.v1 import database_pb2 as _database_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hello(_message.Message):
    __slots__ = ("guest_id",)
    GUEST_ID_FIELD_NUMBER: _ClassVar[int]
    guest_id: str
    def __init__(self, guest_id: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("status", "host", "port", "message")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    status: _database_pb2.ServiceStatus
    host: str
    port: int
    message: str
    def __init__(self, status: _Optional[_Union[_database_pb2.ServiceStatus, str]] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class GuestUser(_message.Message):
    __slots__ = ("name", "host", "verifier", "databases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    verifier: str
    databases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., verifier: _Optional[str] = ..., databases: _Optional[_Iterable[str]] = ...) -> None: ...

class Prepare(_message.Message):
    __slots__ = ("manager", "databases", "users", "volume_size_gb", "restore", "replicate")
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    REPLICATE_FIELD_NUMBER: _ClassVar[int]
    manager: str
    databases: _containers.RepeatedCompositeFieldContainer[_database_pb2.DatabaseSpec]
    users: _containers.RepeatedCompositeFieldContainer[GuestUser]
    volume_size_gb: int
    restore: RestoreFrom
    replicate: ReplicateFrom
    def __init__(self, manager: _Optional[str] = ..., databases: _Optional[_Iterable[_Union[_database_pb2.DatabaseSpec, _Mapping]]] = ..., users: _Optional[_Iterable[_Union[GuestUser, _Mapping]]] = ..., volume_size_gb: _Optional[int] = ..., restore: _Optional[_Union[RestoreFrom, _Mapping]] = ..., replicate: _Optional[_Union[ReplicateFrom, _Mapping]] = ...) -> None: ...

class ReplicateFrom(_message.Message):
    __slots__ = ("host", "port", "user", "password")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    user: str
    password: str
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., user: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class Promote(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestoreFrom(_message.Message):
    __slots__ = ("backup_id", "checksum_sha256", "size_bytes")
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    backup_id: str
    checksum_sha256: str
    size_bytes: int
    def __init__(self, backup_id: _Optional[str] = ..., checksum_sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class TakeBackup(_message.Message):
    __slots__ = ("backup_id",)
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    backup_id: str
    def __init__(self, backup_id: _Optional[str] = ...) -> None: ...

class BackupHeader(_message.Message):
    __slots__ = ("backup_id", "tool")
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    backup_id: str
    tool: str
    def __init__(self, backup_id: _Optional[str] = ..., tool: _Optional[str] = ...) -> None: ...

class BackupTrailer(_message.Message):
    __slots__ = ("size_bytes", "checksum_sha256")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_SHA256_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    checksum_sha256: str
    def __init__(self, size_bytes: _Optional[int] = ..., checksum_sha256: _Optional[str] = ...) -> None: ...

class UploadBackupRequest(_message.Message):
    __slots__ = ("header", "data", "trailer")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    header: BackupHeader
    data: bytes
    trailer: BackupTrailer
    def __init__(self, header: _Optional[_Union[BackupHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., trailer: _Optional[_Union[BackupTrailer, _Mapping]] = ...) -> None: ...

class UploadBackupResponse(_message.Message):
    __slots__ = ("size_bytes", "checksum_sha256")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_SHA256_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    checksum_sha256: str
    def __init__(self, size_bytes: _Optional[int] = ..., checksum_sha256: _Optional[str] = ...) -> None: ...

class DownloadBackupRequest(_message.Message):
    __slots__ = ("backup_id",)
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    backup_id: str
    def __init__(self, backup_id: _Optional[str] = ...) -> None: ...

class DownloadBackupResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("id", "prepare", "restart", "create_databases", "delete_database", "list_databases", "create_users", "delete_user", "list_users", "grant_access", "revoke_access", "enable_root", "new_credential", "take_backup", "enable_replication", "promote")
    ID_FIELD_NUMBER: _ClassVar[int]
    PREPARE_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    CREATE_DATABASES_FIELD_NUMBER: _ClassVar[int]
    DELETE_DATABASE_FIELD_NUMBER: _ClassVar[int]
    LIST_DATABASES_FIELD_NUMBER: _ClassVar[int]
    CREATE_USERS_FIELD_NUMBER: _ClassVar[int]
    DELETE_USER_FIELD_NUMBER: _ClassVar[int]
    LIST_USERS_FIELD_NUMBER: _ClassVar[int]
    GRANT_ACCESS_FIELD_NUMBER: _ClassVar[int]
    REVOKE_ACCESS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_ROOT_FIELD_NUMBER: _ClassVar[int]
    NEW_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    TAKE_BACKUP_FIELD_NUMBER: _ClassVar[int]
    ENABLE_REPLICATION_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    prepare: Prepare
    restart: Restart
    create_databases: DatabasesChange
    delete_database: NameRef
    list_databases: ListRequest
    create_users: UsersChange
    delete_user: NameRef
    list_users: ListRequest
    grant_access: Access
    revoke_access: Access
    enable_root: GuestUser
    new_credential: str
    take_backup: TakeBackup
    enable_replication: GuestUser
    promote: Promote
    def __init__(self, id: _Optional[str] = ..., prepare: _Optional[_Union[Prepare, _Mapping]] = ..., restart: _Optional[_Union[Restart, _Mapping]] = ..., create_databases: _Optional[_Union[DatabasesChange, _Mapping]] = ..., delete_database: _Optional[_Union[NameRef, _Mapping]] = ..., list_databases: _Optional[_Union[ListRequest, _Mapping]] = ..., create_users: _Optional[_Union[UsersChange, _Mapping]] = ..., delete_user: _Optional[_Union[NameRef, _Mapping]] = ..., list_users: _Optional[_Union[ListRequest, _Mapping]] = ..., grant_access: _Optional[_Union[Access, _Mapping]] = ..., revoke_access: _Optional[_Union[Access, _Mapping]] = ..., enable_root: _Optional[_Union[GuestUser, _Mapping]] = ..., new_credential: _Optional[str] = ..., take_backup: _Optional[_Union[TakeBackup, _Mapping]] = ..., enable_replication: _Optional[_Union[GuestUser, _Mapping]] = ..., promote: _Optional[_Union[Promote, _Mapping]] = ...) -> None: ...

class Restart(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DatabasesChange(_message.Message):
    __slots__ = ("databases",)
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    databases: _containers.RepeatedCompositeFieldContainer[_database_pb2.DatabaseSpec]
    def __init__(self, databases: _Optional[_Iterable[_Union[_database_pb2.DatabaseSpec, _Mapping]]] = ...) -> None: ...

class UsersChange(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[GuestUser]
    def __init__(self, users: _Optional[_Iterable[_Union[GuestUser, _Mapping]]] = ...) -> None: ...

class NameRef(_message.Message):
    __slots__ = ("name", "host")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ...) -> None: ...

class Access(_message.Message):
    __slots__ = ("user", "host", "databases")
    USER_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    user: str
    host: str
    databases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user: _Optional[str] = ..., host: _Optional[str] = ..., databases: _Optional[_Iterable[str]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("result_of", "ok", "error", "error_code", "databases", "users")
    RESULT_OF_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    result_of: str
    ok: bool
    error: str
    error_code: str
    databases: _containers.RepeatedCompositeFieldContainer[_database_pb2.DatabaseSpec]
    users: _containers.RepeatedCompositeFieldContainer[_database_pb2.UserSpec]
    def __init__(self, result_of: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., databases: _Optional[_Iterable[_Union[_database_pb2.DatabaseSpec, _Mapping]]] = ..., users: _Optional[_Iterable[_Union[_database_pb2.UserSpec, _Mapping]]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("hello", "heartbeat", "result")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    result: Result
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...
