"""EC2's RunInstances through real gRPC: id mapping, the shared create path,
block device mapping parsing, and errors naming the EC2 parameter."""

import uuid

import grpc
import pytest

from nimbus.compute.v1 import ec2_pb2 as E
from nimbus.compute.v1 import ec2_pb2_grpc
from nimbus.services.compute.ec2 import Ec2Ids, block_device_mapping
from stack import C, Stack, user, violation




@pytest.fixture
async def stack(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.ec2 = ec2_pb2_grpc.Ec2ServiceStub(s.channel)
        yield s


async def ami_of(stack, name="cirros") -> str:
    images = (await stack.ec2.DescribeImages(E.DescribeImagesRequest(), metadata=user())).images
    return next(i.image_id for i in images if i.name == name)


async def test_run_instances_boots_through_the_create_path(stack):
    ami = await ami_of(stack)
    assert ami.startswith("ami-") and len(ami) == 12
    assert await ami_of(stack) == ami   # one mapping per image, stable
    resp = await stack.ec2.RunInstances(E.RunInstancesRequest(
        image_id=ami, instance_type="m1.tiny", min_count=2, max_count=2,
        block_device_mapping=[E.Ec2BlockDeviceMapping(device_name="/dev/vdb", virtual_name="ephemeral0"),
                              E.Ec2BlockDeviceMapping(device_name="/dev/vdc", no_device=True)]),
        metadata=user())
    assert resp.reservation_id.startswith("r-") and len(resp.instances) == 2
    for inst in resp.instances:
        assert inst.instance_id.startswith("i-") and inst.state == "pending"
        done = await stack.wait_settled(inst.uuid)
        assert done.vm_state == C.VM_STATE_ACTIVE


@pytest.mark.parametrize("kw, code, field", [
    (dict(image_id=""), grpc.StatusCode.INVALID_ARGUMENT, "image_id"),
    (dict(image_id="ami-xyz"), grpc.StatusCode.INVALID_ARGUMENT, "image_id"),
    (dict(image_id="aki-0000abcd"), grpc.StatusCode.INVALID_ARGUMENT, "image_id"),
    (dict(image_id="ami-0000abcd"), grpc.StatusCode.NOT_FOUND, "image"),
    (dict(instance_type=""), grpc.StatusCode.INVALID_ARGUMENT, "instance_type"),
    (dict(instance_type="m9.nope"), grpc.StatusCode.NOT_FOUND, "flavor"),
    (dict(kernel_id="ari-0000abcd"), grpc.StatusCode.INVALID_ARGUMENT, "kernel_id"),
    (dict(min_count=3, max_count=2), grpc.StatusCode.INVALID_ARGUMENT, "max_count"),
    (dict(block_device_mapping=[E.Ec2BlockDeviceMapping(
        device_name="/dev/vdb", ebs=E.Ec2Ebs(snapshot_id="snap-0000abcd"))]),
     grpc.StatusCode.NOT_FOUND, "snapshot"),
    (dict(block_device_mapping=[E.Ec2BlockDeviceMapping(
        device_name="/dev/vdb", ebs=E.Ec2Ebs(snapshot_id="snap-0000abcd", volume_id="vol-0000abcd"))]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping[0].ebs"),
    (dict(block_device_mapping=[E.Ec2BlockDeviceMapping(device_name="/dev/vdb",
                                                        virtual_name="ephemeralX")]),
     grpc.StatusCode.INVALID_ARGUMENT, "block_device_mapping[0].virtual_name"),
])
async def test_bad_run_instances(stack, kw, code, field):
    request = dict(image_id=await ami_of(stack), instance_type="m1.tiny")
    request.update(kw)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.ec2.RunInstances(E.RunInstancesRequest(**request), metadata=user())
    assert err.value.code() == code
    assert violation(err.value) == field


async def test_ec2_block_device_mapping_parsing(store):
    ids = Ec2Ids(store)
    snap, vol = str(uuid.uuid4()), str(uuid.uuid4())
    snap_id, vol_id = await ids.ec2_id(snap, "snap"), await ids.ec2_id(vol, "vol")
    assert await ids.ec2_id(snap, "snap") == snap_id
    parsed = await block_device_mapping(ids, [
        E.Ec2BlockDeviceMapping(device_name="/dev/vdb", ebs=E.Ec2Ebs(snapshot_id=snap_id, volume_size=5)),
        E.Ec2BlockDeviceMapping(device_name="/dev/vdc", ebs=E.Ec2Ebs(
            volume_id=vol_id, delete_on_termination=False)),
        E.Ec2BlockDeviceMapping(device_name="/dev/vdd", virtual_name="ephemeral0"),
        E.Ec2BlockDeviceMapping(device_name="/dev/vde", virtual_name="swap"),
        E.Ec2BlockDeviceMapping(device_name="/dev/vdf", no_device=True),
    ])
    assert [(p.snapshot_id, p.volume_id, p.volume_size, p.delete_on_termination, p.virtual_name,
             p.no_device) for p in parsed] == [
        (snap, "", 5, "true", "", False),        # EC2's default: delete on termination
        ("", vol, 0, "false", "", False),
        ("", "", 0, "", "ephemeral0", False),
        ("", "", 0, "", "swap", False),
        ("", "", 0, "", "", True)]
