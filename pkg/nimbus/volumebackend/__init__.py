"""Volume backends (Cinder's volume drivers): where a volume's blocks live.

A backend is used by the volume manager only (it holds any credentials).
Every operation is idempotent, so a manager that crashed half-way simply
runs it again: a create overwrites what a crashed create left, a delete of
something already gone succeeds.

    create(volume_id, size_gb)                          an empty volume
    create_from_snapshot(volume_id, snapshot_id, size_gb, snapshot_volume_id=)
    create_from_volume(volume_id, source_id, size_gb)
    create_from_image(volume_id, image, chunks, size_gb)  image: compute Image,
                                                        chunks(): its bytes
    extend(volume_id, size_gb)                          grow only
    delete(volume_id)
    snapshot(snapshot_id, volume_id)
    delete_snapshot(snapshot_id, volume_id)
    exists(volume_id) -> bool
    connection(volume_id) -> VolumeConnection   how a host reaches it (attach)

A failure the user should read is a BackendError (its message becomes the
volume's fault).
"""

from __future__ import annotations

GIB = 1 << 30
BACKENDS = ("file", "rbd")


class BackendError(Exception):
    """An operation failed for a reason worth showing on the volume."""


class BackendBusy(BackendError):
    """Refused until something else goes first (a snapshot's clones): the
    record goes back to where it was, with the reason as its fault."""


def make(kind: str, *, root: str = "", ceph_conf: str = "", volumes_pool: str = "volumes",
         images_pool: str = "images"):
    if kind == "file":
        from nimbus.volumebackend.file import FileBackend
        return FileBackend(root)
    if kind == "rbd":
        from nimbus.volumebackend.rbd import RbdBackend   # needs Ceph's python modules
        if not ceph_conf:
            raise SystemExit("volume backend rbd needs --ceph-conf")
        return RbdBackend(ceph_conf, volumes_pool=volumes_pool, images_pool=images_pool,
                          cache_dir=root)
    raise SystemExit(f"volume backend must be one of {', '.join(BACKENDS)}, not {kind!r}")
