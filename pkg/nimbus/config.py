"""Settings for every nimbus process: command-line flags, each defaulting to
an environment variable NIMBUS_<FLAG> (Kubernetes sets those), then to the
development defaults `make run` uses."""

from __future__ import annotations

import argparse
import dataclasses
import os

DEFAULT_API_ADDRESS = "127.0.0.1:8774"
DEFAULT_CONDUCTOR_ADDRESS = "127.0.0.1:8775"
DEFAULT_SCHEDULER_ADDRESS = "127.0.0.1:8776"
DEFAULT_DATABASE_ADDRESS = "127.0.0.1:8779"
DEFAULT_VOLUME_ADDRESS = "127.0.0.1:8778"


@dataclasses.dataclass
class Config:
    # One etcd endpoint or a cluster's members, comma-separated (also
    # --etcd / NIMBUS_ETCD): nimbus fails over between them.
    etcd_endpoint: str = "127.0.0.1:2379"
    etcd_prefix: str = "/nimbus/"
    # host:port serving Prometheus /metrics ("" none; port 0 a free one).
    metrics_address: str = ""
    # host:port of a plaintext health-only gRPC port for Kubernetes' probes
    # ("" none; see healthport.py).
    health_address: str = ""
    # Seconds one etcd call may take before the caller gets UNAVAILABLE.
    etcd_timeout: float = 5.0
    # TLS to etcd (its --trusted-ca-file / --client-cert-auth): the CA that
    # signed etcd's certificate, and this client's certificate and key for
    # etcd's client-cert auth; "" plaintext. Read at start.
    etcd_ca: str = ""
    etcd_cert: str = ""
    etcd_key: str = dataclasses.field(default="", repr=False)
    listen: str = ""
    api_address: str = DEFAULT_API_ADDRESS
    conductor_address: str = DEFAULT_CONDUCTOR_ADDRESS
    scheduler_address: str = DEFAULT_SCHEDULER_ADDRESS
    # The shared secret internal callers present; never logged.
    service_token: str = dataclasses.field(default="", repr=False)
    # Development auth: 'Bearer <user>:<project>' is believed as is.
    noauth: bool = False
    state_dir: str = ".nimbus"
    # Agent settings.
    host: str = ""
    libvirt_uri: str = "test:///default"
    virt_type: str = "test"
    simulate: int = 0
    vcpus: int = 32
    memory_mb: int = 65536
    # 0: report the image backend's real capacity (local disk or Ceph).
    disk_gb: int = 1000
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    # Image backend for instance disks: qcow2 (local files) or rbd (Ceph).
    image_backend: str = "qcow2"
    ceph_conf: str = ""
    # The cephx user the image store (API) and the rbd volume backend connect
    # as, without "client." ("": admin); each process has its own.
    rbd_user: str = ""
    rbd_images_pool: str = "images"
    rbd_vms_pool: str = "vms"
    force_raw_images: bool = False
    force_config_drive: bool = False
    # Seconds between power-state syncs (domains stopped or gone behind our back).
    power_sync_interval: float = 10.0
    # Servers ACTIVE when their host went away run again when it is back (Nova's flag).
    resume_guests_state_on_host_boot: bool = False
    # Seconds a stop waits for the guest's own shutdown before a hard one.
    shutdown_timeout: float = 60.0
    # Where the API keeps image bytes: file (state_dir/images) or rbd.
    image_store: str = "file"
    # Conductor settings.
    max_attempts: int = 3
    # A resize may stay on its host (Nova's flag; `make run`, with one host, turns it on).
    allow_resize_to_same_host: bool = False
    # Seconds after which a finished resize is confirmed by itself (0: never).
    resize_confirm_window: float = 0.0
    node_ttl: int = 10
    # Seconds after which a multi-create's reservation whose writer died is
    # completed by the conductor (reservations.py).
    reservation_timeout: float = 30.0
    # DatabaseService settings (Trove's usage_timeout, agent_heartbeat_expiry).
    database_address: str = DEFAULT_DATABASE_ADDRESS
    usage_timeout: float = 1800.0
    agent_heartbeat_expiry: float = 60.0
    # Where backup bytes go: file (state_dir/backups) or rados (a pool on
    # --ceph-conf's cluster, as --rbd-user), in objects of this many bytes.
    backup_store: str = "file"
    rados_backups_pool: str = "backups"
    rados_backups_object_size: int = 4 << 20
    default_datastore: str = "postgresql"
    # local: run guest agents as local processes (the libvirt test driver);
    # none: they run inside the servers (a real hypervisor).
    guest_launch: str = "local"
    guest_dir: str = ""
    guest_heartbeat: float = 1.0
    # Authentication (nimbus.rpc.auth): noauth | jwt; "" follows --noauth.
    auth: str = ""
    # noauth on a non-loopback address is refused unless this says so.
    allow_noauth_anywhere: bool = False
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwks_url: str = ""
    jwks_file: str = ""
    jwt_user_claim: str = "sub"
    jwt_project_claim: str = "project_id"
    jwt_roles_claim: str = "roles"
    # Seconds between two JWKS fetches at most (an unknown kid asks for one).
    jwks_min_refresh: float = 30.0
    # An agent's host token (python -m nimbus.rpc.auth agent-token HOST); never logged.
    agent_token: str = dataclasses.field(default="", repr=False)
    # TLS (nimbus.rpc.tls): the server's (and, for mTLS, the client's)
    # certificate and key files, reloaded when they change; the CA clients
    # verify servers with and servers verify client certificates with.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_client_auth: bool = False
    # Volume manager settings (cinder-volume): its backend (file: raw files
    # under state_dir/volumes, one machine only; rbd: Ceph), the RBD pool,
    # and the type of volumes created without one (the API uses it too).
    volume_backend: str = "file"
    rbd_volumes_pool: str = "volumes"
    default_volume_type: str = "default"

    @property
    def image_dir(self) -> str:
        return os.path.join(self.state_dir, "images")

    @property
    def instances_path(self) -> str:
        return os.path.join(self.state_dir, "instances")


def _env(name: str, default):
    raw = os.environ.get("NIMBUS_" + name.upper())
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    return type(default)(raw)


def parse(argv: list[str] | None, description: str, default_listen: str = "") -> Config:
    """Flags named like the fields (--etcd-endpoint, --service-token, …)."""
    base = Config(listen=default_listen)
    parser = argparse.ArgumentParser(description=description)
    for field in dataclasses.fields(Config):
        default = _env(field.name, getattr(base, field.name))
        flags = ["--" + field.name.replace("_", "-")]
        if field.name == "etcd_endpoint":   # the short name etcd's own tools use
            default = _env("etcd_endpoint", _env("etcd", default))
            flags.append("--etcd")
        if isinstance(default, bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(*flags, type=type(default), default=default,
                                help=None if field.repr else "read from the environment preferably")
    return Config(**vars(parser.parse_args(argv)))
