"""kill -9 of the volume manager in the middle of a create and of a delete
(a real crash at a named point, nimbus.crashpoints): the record stays in
its transitional status while no manager runs, and the next manager's first
list finishes it. Nothing ends stuck, nothing is left on the backend."""

import asyncio
import os

import pytest

from nimbus.compute.v1 import quotas_pb2, quotas_pb2_grpc
from nimbus.volume.v1 import volume_pb2 as V
from stack import ADMIN, Stack, user
from test_volumes import VS, volume_file, wait_gone, wait_status


@pytest.mark.parametrize("crash_at", ["volume-created", "volume-deleted-on-backend"])
async def test_volume_manager_killed_mid_step(etcd, tmp_path, crash_at):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1, volume_manager=True,
                     subprocesses=("volume",), crash_at=crash_at) as stack:
        me = user("kim", "crash")
        vol = (await stack.volumes.CreateVolume(V.CreateVolumeRequest(size_gb=1),
                                                metadata=me)).volume
        if crash_at == "volume-deleted-on-backend":
            await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
            await stack.volumes.DeleteVolume(V.DeleteVolumeRequest(id=vol.id), metadata=me)
        manager = stack.volume_manager
        assert await manager.exited(30) == 137    # os._exit at the crash point, as kill -9
        pending = (await stack.volumes.GetVolume(V.GetVolumeRequest(id=vol.id), metadata=me)).volume
        expected = (VS.VOLUME_STATUS_CREATING if crash_at == "volume-created"
                    else VS.VOLUME_STATUS_DELETING)
        assert pending.status == expected
        # The backend step was done before the crash: the file exists (create)
        # or is gone (delete), and only the record is behind.
        assert os.path.exists(volume_file(stack, vol.id)) == (crash_at == "volume-created")

        manager.extra_env = {}        # the next run does not crash
        await manager.start()
        quotas = quotas_pb2_grpc.QuotaServiceStub(stack.channel)
        if crash_at == "volume-created":
            vol = await wait_status(stack, vol.id, VS.VOLUME_STATUS_AVAILABLE)
            assert os.path.getsize(volume_file(stack, vol.id)) == 1 << 30
            left = os.listdir(os.path.dirname(volume_file(stack, vol.id)))
            assert left == [os.path.basename(volume_file(stack, vol.id))]
        else:
            await wait_gone(stack, vol.id)
            assert os.listdir(os.path.dirname(volume_file(stack, vol.id))) == []
            got = await quotas.GetQuotaUsage(quotas_pb2.GetQuotaUsageRequest(project_id="crash"),
                                             metadata=ADMIN)
            assert (got.usage.volumes.in_use, got.usage.gigabytes.in_use) == (0, 0)


async def test_a_standby_manager_takes_over_from_a_killed_leader(etcd, tmp_path):
    """Two managers of one backend: the leader dies (kill -9, at a crash
    point) mid-create; the standby is elected once the leader's lease runs
    out and finishes the volume."""
    from nimbus.etcd import free_port
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1, volume_manager=True,
                     subprocesses=("volume",), crash_at="volume-created") as stack:
        # The first manager leads (its key is there) before the standby starts.
        from nimbus.store import keys
        async with asyncio.timeout(30):
            while await stack.store.get_raw(keys.leader("volume-manager-file")) is None:
                await asyncio.sleep(0.05)
        standby = stack._subprocess("volume", stack._for(f"127.0.0.1:{free_port()}"))
        standby.extra_env = {}
        await standby.start()
        try:
            me = user("lou", "standby")
            vol = (await stack.volumes.CreateVolume(V.CreateVolumeRequest(size_gb=1),
                                                    metadata=me)).volume
            leader = stack.volume_manager
            assert await leader.exited(30) == 137
            done = await stack.wait_volume(
                vol.id, lambda v: v is not None and v.status == VS.VOLUME_STATUS_AVAILABLE, timeout=60)
            assert done.fault == "" and os.path.getsize(volume_file(stack, vol.id)) == 1 << 30
            assert standby.proc.poll() is None
        finally:
            await standby.stop()
