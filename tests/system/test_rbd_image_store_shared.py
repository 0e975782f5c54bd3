"""The production image store (deploy/overlays/production): the Ceph images
pool shared by several compute API replicas. Real Ceph, real etcd, real API
processes; the replicas connect as their own cephx user name (the test
cluster runs with auth none, so the name is carried, not checked)."""

from imagestores import Replicas, round_trip


def rbd_images(ceph) -> set[str]:
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as conn, conn.open_ioctx("images") as ioctx:
        return set(rbd.RBD().list(ioctx))


async def test_replicas_share_the_rbd_store(etcd, tmp_path, ceph):
    import subprocess
    raw = tmp_path / "raw.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "16M"], check=True)
    with open(raw, "r+b") as f:   # some data, so the round trip compares real bytes
        f.write(bytes(range(256)) * 4096)
    replicas = Replicas(etcd.endpoint, str(tmp_path), image_store="rbd",
                        ceph_conf=ceph.conf_path, rbd_user="nimbus-images")
    image_id = await round_trip(replicas, str(raw), "raw")
    assert image_id not in rbd_images(ceph), "the delete left the RBD image behind"
