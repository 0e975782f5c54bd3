"""The Kubernetes manifests in deploy/ are valid and keep nimbus's rules.

Validation is offline, against the schemas kubernetes-validate bundles, in
strict mode (unknown fields fail, so a typo cannot hide).
"""

from __future__ import annotations

import pathlib

import kubernetes_validate
import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
# The oldest Kubernetes README.md supports (native gRPC probes are GA since
# 1.27) and the newest the package bundles.
K8S_VERSIONS = ("1.27", kubernetes_validate.latest_version())
# Processes that serve nothing, so have no gRPC port to probe.
NO_PORT = {"agent"}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _documents(path: pathlib.Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _check_etcd(container: dict) -> None:
    """etcd is pinned to a version without the cancelled-Txn panic."""
    from nimbus.store.store import etcd_version_problem
    image = container["image"]
    assert ":v" in image, f"etcd image {image} is not pinned to a version"
    version = image.rsplit(":v", 1)[1]
    assert tuple(int(p) for p in version.split(".")[:2]) >= (3, 5), version
    assert etcd_version_problem(version) is None, image


def _check_container(container: dict) -> None:
    name = container["name"]
    if name == "etcd":
        return _check_etcd(container)
    env = {e["name"]: e for e in container.get("env", [])}

    token = env.get("NIMBUS_SERVICE_TOKEN")
    assert token is not None, f"{name}: NIMBUS_SERVICE_TOKEN not set"
    assert "value" not in token, f"{name}: NIMBUS_SERVICE_TOKEN is inline"
    assert token["valueFrom"]["secretKeyRef"] == {"name": "nimbus-service-token", "key": "token"}

    (metrics_port,) = [p["containerPort"] for p in container.get("ports", [])
                       if p["name"] == "metrics"]
    assert env["NIMBUS_METRICS_ADDRESS"]["value"].endswith(f":{metrics_port}"), \
        f"{name}: metrics served off the declared port"

    if name in NO_PORT:
        for probe in PROBES:
            assert probe not in container or "exec" in container[probe], \
                f"{name}: {probe} must be absent or exec"
        return

    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "grpc"]
    assert env["NIMBUS_LISTEN"]["value"].endswith(f":{port}"), f"{name}: listens off its port"
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in container, f"{name}: no {probe}"
    for probe in PROBES:
        if probe in container:
            assert container[probe].get("grpc", {}).get("port") == port, \
                f"{name}: {probe} is not a gRPC probe on port {port}"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest(path: pathlib.Path) -> None:
    docs = _documents(path)
    assert docs, f"{path.name} holds no documents"
    for doc in docs:
        for version in K8S_VERSIONS:
            # Raises on a schema violation, or on a kind the version lacks.
            kubernetes_validate.validate(doc, version, strict=True)

        if doc["kind"] == "ConfigMap":
            assert "NIMBUS_SERVICE_TOKEN" not in doc.get("data", {}), "token in a ConfigMap"
        template = doc.get("spec", {}).get("template")
        if template:
            pod = template["spec"]
            for container in pod["containers"]:
                _check_container(container)
            for container in pod.get("initContainers", []):
                assert not any(e["name"] == "NIMBUS_SERVICE_TOKEN" and "value" in e
                               for e in container.get("env", [])), "inline token"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert MANIFESTS
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
