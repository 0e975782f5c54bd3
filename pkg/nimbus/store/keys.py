"""The etcd key schema, in one place. Every key is <prefix><kind>/<parts>.

    instances/<uuid>                 InstanceRecord
    actions/<uuid>/<request id>      InstanceAction
    nodes/<host>                     NodeRecord, on the agent's lease
    node-leases/<host>/<lease>       empty, on that lease: the lease is the host's
    providers/<host>                 ProviderUsage (its mod_revision is the claim generation)
    allocations/<host>/<consumer>    Allocation
    flavors/<id>                     Flavor
    images/<id>                      ImageRecord
    image-members/<image>/<project>  ImageMember (Glance's image sharing)
    leaders/<role>                   the elected leader's id, on its lease
    keypairs/<user>/<name>           KeyPair (public half only)
    security-groups/<project>/<id>   SecurityGroup with its rules
    server-groups/<project>/<id>     ServerGroup (policy, members)
    aggregates/<id>                  Aggregate (hosts, availability zone)
    quotas/<project>                 per-project quota limits (overrides of the defaults)
    usages/<project>                 per-project usage, changed in the same txn as the records
    ec2-ids/<ec2 id>, ec2-uuids/<uuid>   Ec2Id: an EC2 id mapping, both directions
    networks/<id>                    Network (its subnet ids in order)
    subnets/<id>                     Subnet
    ports/<id>                       Port
    ips/<subnet id>/<address>        StringValue port id: one key per allocated address
    macs/<mac>                       StringValue port id: one key per MAC in use
    network-ports/<network>/<port>   StringValue port id: the network's ports
    server-ports/<server>/<nn>       StringValue port id: the server's ports in NIC order
    db/instances/<id>                database InstanceRecord (nimbus.database.v1)
    db/datastores/<name>             Datastore with its versions
    db/quotas/<project>, db/usages/<project>   DbQuota overrides, DbUsage
    guests/<guest id>                GuestRecord (the guest credential's hash)
    build-inputs/<uuid>              BuildInputs: an instance's user_data and files
    reservations/<reservation id>    Reservation: a multi-create written in chunks
    volumes/<id>                     VolumeRecord (attachments inside)
    snapshots/<id>                   SnapshotRecord
    volume-types/<name>              VolumeType
"""

from __future__ import annotations

INSTANCES = "instances/"
ACTIONS = "actions/"
NODES = "nodes/"
NODE_LEASES = "node-leases/"
PROVIDERS = "providers/"
ALLOCATIONS = "allocations/"
MIGRATIONS = "migrations/"
FLAVORS = "flavors/"
IMAGES = "images/"
LEADERS = "leaders/"
KEYPAIRS = "keypairs/"
SECURITY_GROUPS = "security-groups/"
SERVER_GROUPS = "server-groups/"
AGGREGATES = "aggregates/"
QUOTAS = "quotas/"
USAGES = "usages/"
CLIENT_TOKENS = "client-tokens/"
COMPUTE_SERVICES = "compute-services/"
FLAVOR_ACCESS = "flavor-access/"
IMAGE_MEMBERS = "image-members/"
EC2_IDS = "ec2-ids/"
EC2_UUIDS = "ec2-uuids/"


def instance(instance_id: str) -> str:
    return INSTANCES + instance_id


def action(instance_id: str, request_id: str) -> str:
    return f"{ACTIONS}{instance_id}/{request_id}"


def node(host: str) -> str:
    return NODES + host


def node_lease(host: str, lease_id: int) -> str:
    """node-leases/<host>/<lease id>, on that lease: whose lease it is."""
    return f"{NODE_LEASES}{host}/{lease_id:x}"


def provider(host: str) -> str:
    return PROVIDERS + host


def allocation(host: str, consumer_id: str) -> str:
    return f"{ALLOCATIONS}{host}/{consumer_id}"


def migration(migration_id: str) -> str:
    return MIGRATIONS + migration_id


def flavor(flavor_id: str) -> str:
    return FLAVORS + flavor_id


def image(image_id: str) -> str:
    return IMAGES + image_id


def leader(role: str) -> str:
    return LEADERS + role


def keypair(user_id: str, name: str) -> str:
    return f"{KEYPAIRS}{user_id}/{name}"


def security_group(project_id: str, group_id: str) -> str:
    return f"{SECURITY_GROUPS}{project_id}/{group_id}"


def server_group(project_id: str, group_id: str) -> str:
    return f"{SERVER_GROUPS}{project_id}/{group_id}"


def aggregate(aggregate_id: str) -> str:
    return AGGREGATES + aggregate_id


def quota(project_id: str) -> str:
    return QUOTAS + project_id


def usage(project_id: str) -> str:
    return USAGES + project_id


def image_member(image_id: str, project_id: str = "") -> str:
    """image-members/<image>/<project>; without a project: the image's prefix."""
    return f"{IMAGE_MEMBERS}{image_id}/{project_id}"


def flavor_access(flavor_id: str, project_id: str = "") -> str:
    """flavor-access/<flavor>/<project>; without a project: the flavor's prefix."""
    return f"{FLAVOR_ACCESS}{flavor_id}/{project_id}"


def compute_service(host: str) -> str:
    return f"{COMPUTE_SERVICES}{host}"


def client_token(project_id: str, token_sha256: str) -> str:
    return f"{CLIENT_TOKENS}{project_id}/{token_sha256}"


def ec2_id(ec2: str) -> str:
    return EC2_IDS + ec2


def ec2_uuid(uuid: str) -> str:
    return EC2_UUIDS + uuid


# ---- networks, subnets, ports, IPAM (nimbus.ipam) ----------------------------

NETWORKS = "networks/"
SUBNETS = "subnets/"
PORTS = "ports/"
IPS = "ips/"
MACS = "macs/"
NETWORK_PORTS = "network-ports/"
SERVER_PORTS = "server-ports/"


def network(network_id: str) -> str:
    return NETWORKS + network_id


def subnet(subnet_id: str) -> str:
    return SUBNETS + subnet_id


def port(port_id: str) -> str:
    return PORTS + port_id


def subnet_ips(subnet_id: str) -> str:
    """The prefix of a subnet's allocated addresses."""
    return f"{IPS}{subnet_id}/"


def ip(subnet_id: str, address: str) -> str:
    return f"{IPS}{subnet_id}/{address}"


def mac(address: str) -> str:
    return MACS + address


def network_ports(network_id: str) -> str:
    return f"{NETWORK_PORTS}{network_id}/"


def network_port(network_id: str, port_id: str) -> str:
    return f"{NETWORK_PORTS}{network_id}/{port_id}"


def server_ports(server_id: str) -> str:
    return f"{SERVER_PORTS}{server_id}/"


def server_port(server_id: str, index: int) -> str:
    return f"{SERVER_PORTS}{server_id}/{index:02d}"


# ---- DatabaseService (nimbus.services.database) ------------------------------

DB_INSTANCES = "db/instances/"
DB_DATASTORES = "db/datastores/"
DB_QUOTAS = "db/quotas/"
DB_USAGES = "db/usages/"
GUESTS = "guests/"
DB_BACKUPS = "db/backups/"


def db_instance(instance_id: str) -> str:
    return DB_INSTANCES + instance_id


def db_datastore(name: str) -> str:
    return DB_DATASTORES + name


def db_quota(project_id: str) -> str:
    return DB_QUOTAS + project_id


def db_usage(project_id: str) -> str:
    return DB_USAGES + project_id


def guest(guest_id: str) -> str:
    return GUESTS + guest_id


# ---- bulky build inputs and large multi-creates ------------------------------

BUILD_INPUTS = "build-inputs/"
RESERVATIONS = "reservations/"


def build_inputs(instance_id: str) -> str:
    return BUILD_INPUTS + instance_id


def reservation(reservation_id: str) -> str:
    return RESERVATIONS + reservation_id


# ---- block storage (nimbus.services.volume) -----------------------------------

VOLUMES = "volumes/"
SNAPSHOTS = "snapshots/"
VOLUME_TYPES = "volume-types/"


def volume(volume_id: str) -> str:
    return VOLUMES + volume_id


def snapshot(snapshot_id: str) -> str:
    return SNAPSHOTS + snapshot_id


def volume_type(name: str) -> str:
    return VOLUME_TYPES + name


def db_backup(backup_id: str) -> str:
    return DB_BACKUPS + backup_id
