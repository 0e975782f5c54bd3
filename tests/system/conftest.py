"""Fixtures for system tests (real external services started per session).

Each section below is self-contained: its own imports, helpers and fixtures.
Add new sections rather than editing another one. NOTE: pytest hooks are
plain module-level functions, so a second `pytest_collection_modifyitems`
in this file would silently replace the first: extend the one below instead.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def unavailable(reason: str):
    """Skip a tier whose daemons this machine lacks, except under CI (CI=true),
    where `make test` installed them: there a missing tier is a failure, never
    a silent skip."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason + " (CI must run every tier: see make test-deps)")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        # Ceph section: every test using the `ceph` fixture is a ceph test (`-m "not ceph"`).
        if "ceph" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ceph)
        # QEMU section: every test using `libvirtd` is a qemu test (`-m "not qemu"`).
        if "libvirtd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.qemu)


# ==== Ceph: a throwaway 1 mon + 1 memstore OSD cluster (tests/system/ceph.py) ====
#
# Needs: apt-get install ceph-mon ceph-osd ceph-common python3-rados python3-rbd
# and tools/link-ceph-modules.sh VENV. Skipped (saying what is missing) only
# when those are absent; any failure to bring the cluster up is an error.


@pytest.fixture(scope="session")
def ceph(tmp_path_factory):
    """A running CephCluster with pools `images` and `vms`: use `.conf_path`
    and `.monitors`. Every daemon is killed at the end of the session."""
    import ceph as ceph_harness   # tests/system/ceph.py

    missing = ceph_harness.missing_requirements()
    if missing:
        unavailable("Ceph not available on this machine: missing " + "; ".join(missing))
    cluster = ceph_harness.CephCluster(str(tmp_path_factory.mktemp("ceph")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# ==== QEMU: libvirtd + QEMU/TCG and the tiny guest (tests/system/qemu.py) ====
#
# Needs: apt-get install libvirt-daemon-system qemu-system-x86 qemu-utils
# genisoimage (make test-deps). One libvirtd per session, shared by the
# QEMU-tier modules; the guest is built once into $NIMBUS_GUEST_CACHE.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_CACHE = os.environ.get("NIMBUS_GUEST_CACHE", os.path.join(REPO, "build", "guest"))


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory):
    import time

    import qemu   # tests/system/qemu.py

    missing = qemu.missing_requirements()
    if missing:
        unavailable("libvirtd/QEMU not available on this machine: missing " + "; ".join(missing))
    daemon = qemu.Libvirtd(str(tmp_path_factory.mktemp("libvirtd")))
    daemon.start()
    print(f"\nlibvirtd up in {daemon.startup_seconds:.2f}s "
          f"(owned: libvirtd={daemon.owns_libvirtd} virtlogd={daemon.owns_virtlogd}; "
          f"/dev/kvm permissions fixed: {daemon.kvm_fixed}; leftovers reaped: {daemon.reaped})")
    yield daemon
    started = time.monotonic()
    daemon.stop()
    print(f"\nlibvirtd stopped in {time.monotonic() - started:.2f}s")


@pytest.fixture(scope="session")
def guest_files():
    import time

    import qemu

    started = time.monotonic()
    files = qemu.build_guest(GUEST_CACHE)
    print(f"\nguest {'cached' if files.cached else 'built'} in {time.monotonic() - started:.2f}s: "
          f"{files.kernel_package} {files.kernel_version}, busybox {files.busybox_version}, "
          f"kernel {os.path.getsize(files.kernel)} B + initramfs {os.path.getsize(files.initramfs)} B")
    return files
