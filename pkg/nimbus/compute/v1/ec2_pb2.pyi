from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ec2Placement(_message.Message):
    __slots__ = ("availability_zone",)
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    availability_zone: str
    def __init__(self, availability_zone: _Optional[str] = ...) -> None: ...

class Ec2Ebs(_message.Message):
    __slots__ = ("snapshot_id", "volume_id", "volume_size", "delete_on_termination")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_SIZE_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    volume_id: str
    volume_size: int
    delete_on_termination: bool
    def __init__(self, snapshot_id: _Optional[str] = ..., volume_id: _Optional[str] = ..., volume_size: _Optional[int] = ..., delete_on_termination: _Optional[bool] = ...) -> None: ...

class Ec2BlockDeviceMapping(_message.Message):
    __slots__ = ("device_name", "ebs", "virtual_name", "no_device")
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    EBS_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_NAME_FIELD_NUMBER: _ClassVar[int]
    NO_DEVICE_FIELD_NUMBER: _ClassVar[int]
    device_name: str
    ebs: Ec2Ebs
    virtual_name: str
    no_device: bool
    def __init__(self, device_name: _Optional[str] = ..., ebs: _Optional[_Union[Ec2Ebs, _Mapping]] = ..., virtual_name: _Optional[str] = ..., no_device: _Optional[bool] = ...) -> None: ...

class RunInstancesRequest(_message.Message):
    __slots__ = ("image_id", "instance_type", "min_count", "max_count", "kernel_id", "ramdisk_id", "key_name", "user_data", "security_group", "placement", "block_device_mapping")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    RAMDISK_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DEVICE_MAPPING_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    instance_type: str
    min_count: int
    max_count: int
    kernel_id: str
    ramdisk_id: str
    key_name: str
    user_data: bytes
    security_group: _containers.RepeatedScalarFieldContainer[str]
    placement: Ec2Placement
    block_device_mapping: _containers.RepeatedCompositeFieldContainer[Ec2BlockDeviceMapping]
    def __init__(self, image_id: _Optional[str] = ..., instance_type: _Optional[str] = ..., min_count: _Optional[int] = ..., max_count: _Optional[int] = ..., kernel_id: _Optional[str] = ..., ramdisk_id: _Optional[str] = ..., key_name: _Optional[str] = ..., user_data: _Optional[bytes] = ..., security_group: _Optional[_Iterable[str]] = ..., placement: _Optional[_Union[Ec2Placement, _Mapping]] = ..., block_device_mapping: _Optional[_Iterable[_Union[Ec2BlockDeviceMapping, _Mapping]]] = ...) -> None: ...

class Ec2Instance(_message.Message):
    __slots__ = ("instance_id", "uuid", "image_id", "instance_type", "state", "ami_launch_index")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AMI_LAUNCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    uuid: str
    image_id: str
    instance_type: str
    state: str
    ami_launch_index: int
    def __init__(self, instance_id: _Optional[str] = ..., uuid: _Optional[str] = ..., image_id: _Optional[str] = ..., instance_type: _Optional[str] = ..., state: _Optional[str] = ..., ami_launch_index: _Optional[int] = ...) -> None: ...

class RunInstancesResponse(_message.Message):
    __slots__ = ("reservation_id", "owner_id", "instances")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    owner_id: str
    instances: _containers.RepeatedCompositeFieldContainer[Ec2Instance]
    def __init__(self, reservation_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[Ec2Instance, _Mapping]]] = ...) -> None: ...

class DescribeImagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Ec2Image(_message.Message):
    __slots__ = ("image_id", "uuid", "name", "state")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    uuid: str
    name: str
    state: str
    def __init__(self, image_id: _Optional[str] = ..., uuid: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class DescribeImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Ec2Image]
    def __init__(self, images: _Optional[_Iterable[_Union[Ec2Image, _Mapping]]] = ...) -> None: ...

class DescribeVolumesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Ec2VolumeAttachment(_message.Message):
    __slots__ = ("instance_id", "device", "status", "delete_on_termination")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DELETE_ON_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    device: str
    status: str
    delete_on_termination: bool
    def __init__(self, instance_id: _Optional[str] = ..., device: _Optional[str] = ..., status: _Optional[str] = ..., delete_on_termination: _Optional[bool] = ...) -> None: ...

class Ec2Volume(_message.Message):
    __slots__ = ("volume_id", "uuid", "size", "snapshot_id", "availability_zone", "status", "attachments")
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    uuid: str
    size: int
    snapshot_id: str
    availability_zone: str
    status: str
    attachments: _containers.RepeatedCompositeFieldContainer[Ec2VolumeAttachment]
    def __init__(self, volume_id: _Optional[str] = ..., uuid: _Optional[str] = ..., size: _Optional[int] = ..., snapshot_id: _Optional[str] = ..., availability_zone: _Optional[str] = ..., status: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[Ec2VolumeAttachment, _Mapping]]] = ...) -> None: ...

class DescribeVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Ec2Volume]
    def __init__(self, volumes: _Optional[_Iterable[_Union[Ec2Volume, _Mapping]]] = ...) -> None: ...

class DescribeSnapshotsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Ec2Snapshot(_message.Message):
    __slots__ = ("snapshot_id", "uuid", "volume_id", "volume_size", "status")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_SIZE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    uuid: str
    volume_id: str
    volume_size: int
    status: str
    def __init__(self, snapshot_id: _Optional[str] = ..., uuid: _Optional[str] = ..., volume_id: _Optional[str] = ..., volume_size: _Optional[int] = ..., status: _Optional[str] = ...) -> None: ...

class DescribeSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[Ec2Snapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[Ec2Snapshot, _Mapping]]] = ...) -> None: ...
