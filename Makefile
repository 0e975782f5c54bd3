# nimbus: `make run` sets everything up and runs the stack; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')

.PHONY: run test protos protos-check lint bench bench-load bench-resize bench-db system-deps test-deps venv clean

# Debian packages nimbus needs: libvirt-python builds against libvirt-dev;
# qemu-img makes the image cache and overlays; genisoimage builds config drives;
# python3-venv and python3-dev let Debian's own python3.11 make the venv and build libvirt-python.
# openssh-client: ssh-keygen generates key pairs (CreateKeypair).
# etcd-server: the embedded etcd, 3.4.23 (README "Which etcd": not 3.5.0-3.5.4).
# postgresql-15, mariadb-server, mariadb-client: the datastores DatabaseService's
# guests run (make run registers both); their system services are not used.
APT_PACKAGES := libvirt-dev pkg-config qemu-utils genisoimage python3-venv python3-dev openssh-client etcd-server \
	postgresql-15 postgresql-client-15 mariadb-server mariadb-client
# The test tiers run real daemons: a throwaway Ceph (mon + OSD, rados/rbd
# Python modules) and libvirtd with QEMU/TCG for a real guest (qemu-block-extra
# gives QEMU its RBD driver; cpio packs the guest's initramfs).
TEST_APT_PACKAGES := ceph-mon ceph-osd ceph-common python3-rados python3-rbd \
	libvirt-daemon-system qemu-system-x86 qemu-block-extra cpio

system-deps:
	@tools/apt-ensure.sh $(APT_PACKAGES)
	@# etcd-server enables a system etcd on 127.0.0.1:2379 where systemd runs; nimbus runs its own.
	@if [ -d /run/systemd/system ] && systemctl is-enabled --quiet etcd 2>/dev/null; then \
	  echo "disabling Debian's etcd service (make run starts its own etcd on 2379)"; \
	  systemctl disable --now etcd; fi
	@# Datastores run as this unprivileged user when nimbus runs as root (PostgreSQL refuses root).
	@if [ "$$(id -u)" = 0 ] && ! id nimbus-db >/dev/null 2>&1; then \
	  useradd --system --no-create-home --shell /usr/sbin/nologin nimbus-db; fi

test-deps: venv
	@tools/apt-ensure.sh $(TEST_APT_PACKAGES)
	@tools/link-ceph-modules.sh $(VENV)

$(STAMP): requirements.txt pyproject.toml | system-deps
	@command -v $(PYTHON) >/dev/null || { echo "nimbus needs Python 3.11 (Ceph's rbd/rados modules are cpython-3.11 builds)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: system-deps $(STAMP)

run: venv
	$(PY) -m nimbus.devstack

test: venv test-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

protos: venv
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format -w
	rm -rf build/gen && mkdir -p build/gen
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=build/gen --grpc_python_out=build/gen --pyi_out=build/gen $(PROTOS)
	for d in $$(cd build/gen && find nimbus -type d); do \
	  mkdir -p pkg/$$d; touch pkg/$$d/__init__.py; \
	  rm -f pkg/$$d/*_pb2.py pkg/$$d/*_pb2.pyi pkg/$$d/*_pb2_grpc.py; \
	  find build/gen/$$d -maxdepth 1 -type f -exec cp {} pkg/$$d/ \; ; done

# Fails when the committed generated code is not what `make protos` makes.
protos-check: protos
	git diff --exit-code -- pkg/nimbus protos || { echo "generated code or proto formatting is stale: run make protos and commit"; exit 1; }
	test -z "$$(git status --porcelain -- pkg/nimbus protos)" || { git status --porcelain -- pkg/nimbus protos; echo "generated files not committed"; exit 1; }

lint: venv
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format -d --exit-code

bench: venv
	$(PY) bench/boot_storm.py $(BENCH_ARGS)

bench-load: venv
	$(PY) bench/client_load.py $(BENCH_ARGS)

bench-resize: venv
	$(PY) bench/resize_storm.py $(BENCH_ARGS)

bench-db: venv
	$(PY) bench/db_create.py $(BENCH_ARGS)

clean:
	rm -rf build .nimbus
