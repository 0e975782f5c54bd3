import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from nimbus.etcd import EmbeddedEtcd  # noqa: E402
from nimbus import log  # noqa: E402

log.configure(level=os.environ.get("NIMBUS_LOG_LEVEL", "warning"), json=False)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    """One real etcd for the session; every stack uses its own key prefix."""
    server = EmbeddedEtcd(str(tmp_path_factory.mktemp("etcd")),
                          log_file=str(tmp_path_factory.mktemp("etcd-log") / "etcd.log")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def qcow2_image(tmp_path_factory):
    from stack import make_qcow2
    return make_qcow2(str(tmp_path_factory.mktemp("img") / "cirros.qcow2"))


@pytest.fixture
async def store(etcd):
    """A Store on the session's etcd under a fresh key prefix of its own."""
    import uuid

    from nimbus.store.store import Store
    s = await Store.connect(etcd.endpoint, prefix=f"/t-{uuid.uuid4().hex[:8]}/")
    yield s
    await s.close()


@pytest.fixture
async def dbstack(etcd, tmp_path, qcow2_image):
    """A nimbus stack with DatabaseService and both datastores registered."""
    from dbstack import DbStack
    async with DbStack(etcd.endpoint, str(tmp_path), qcow2_image) as s:
        yield s
