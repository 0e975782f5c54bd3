"""RestartInstance, ResizeVolume and ResizeInstance keep the data: real PostgreSQL and
MariaDB, rows written before are read back after each."""

import grpc
import pytest

from nimbus.database.v1 import database_pb2 as D
from nimbus.database.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.compute.v1 import compute_pb2 as C
from stack import ADMIN, expect
from test_database_backups import ROWS, delete_instance, sql, usage
from test_database_flow import ALICE
from test_database_guest import active

INV = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("datastore", ["postgresql", "mariadb"])
async def test_restart_volume_growth_and_resize_keep_the_data(dbstack, datastore):
    inst = await active(dbstack, datastore)
    sql(inst, ROWS)
    await dbstack.db.RestartInstance(D.RestartInstanceRequest(id=inst.id), metadata=ALICE)
    # The answer may still show the stop the guest reported; its next heartbeat says HEALTHY.
    restarted = await dbstack.wait_for(inst.id, lambda i: i.status == D.INSTANCE_STATUS_ACTIVE)
    assert sql(restarted, "select id from t order by id") == ["1", "2"]

    for size in (1, 0, 11):   # not larger, not larger, above max_accepted_volume_size (10)
        await expect(dbstack.db.ResizeVolume(D.ResizeVolumeRequest(id=inst.id, size_gb=size),
                                             metadata=ALICE), INV, "size_gb")
    grown = (await dbstack.db.ResizeVolume(D.ResizeVolumeRequest(id=inst.id, size_gb=3),
                                           metadata=ALICE)).instance
    assert grown.volume.size_gb == 3 and (await usage(dbstack)).volumes == 3
    store = dbstack.database.store
    await store.txn([], [store.put(keys.db_quota("demo"), R.DbQuota(volumes=3))])
    await expect(dbstack.db.ResizeVolume(D.ResizeVolumeRequest(id=inst.id, size_gb=4), metadata=ALICE),
                 grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert sql(grown, "select id from t order by id") == ["1", "2"]

    bigger = await dbstack.stack.flavor("m1.db-bigger", ram_mb=1024)
    for ref, code, field in ((inst.flavor_ref, INV, "flavor_ref"),
                             ("m1.nope", grpc.StatusCode.NOT_FOUND, "flavor")):
        await expect(dbstack.db.ResizeInstance(D.ResizeInstanceRequest(id=inst.id, flavor_ref=ref),
                                               metadata=ALICE), code, field)
    resizing = (await dbstack.db.ResizeInstance(D.ResizeInstanceRequest(
        id=inst.id, flavor_ref="m1.db-bigger"), metadata=ALICE)).instance
    assert resizing.status == D.INSTANCE_STATUS_RESIZE
    resized = await dbstack.wait_for(inst.id, lambda i: i.task_status == D.TASK_STATUS_NONE, timeout=120)
    assert resized.flavor_ref == bigger.id and resized.status == D.INSTANCE_STATUS_ACTIVE, resized.fault
    server = await dbstack.api.GetServer(C.GetServerRequest(id=inst.server_id), metadata=ADMIN)
    assert server.server.flavor_ref == bigger.id and server.server.vm_state == C.VM_STATE_ACTIVE
    assert sql(resized, "select id from t order by id") == ["1", "2"]
    await delete_instance(dbstack, inst.id)
    assert (await usage(dbstack)).volumes == 0
