"""Who may call what: one table, every RPC of every nimbus service.

Roles are Keystone's defaults, each implying the ones below it
(admin > member > reader): a reader Gets, Lists, Watches and Describes its
project's resources; a member changes them; an admin does admin
operations. Three more roles are not users':

- `service`: the nimbus processes themselves (the service token, or a
  client certificate when mTLS is on); it satisfies every rule.
- `agent`: one compute host (a host token, see nimbus.rpc.auth). A rule
  with `host_field` names the request field that must equal the agent's own
  host, so a compromised agent cannot report for, or receive the work of,
  another host. An agent satisfies only rules that admit agents.
- `guest`: a guest agent (DatabaseService's GuestAgentService).

The interceptor enforces the table before any handler runs (a method with
no row is refused: fail closed); handlers keep their finer checks
(all_projects, another project's image, ...). Adding a service: add its
rows here; tests/unit/test_policy.py walks every generated service
descriptor and lists the methods that have none.
"""

from __future__ import annotations

import dataclasses

READER, MEMBER, ADMIN = "reader", "member", "admin"
SERVICE, AGENT, GUEST = "service", "agent", "guest"
# Keystone's implied roles: a role grants itself and everything below it.
IMPLIED = {ADMIN: frozenset({ADMIN, MEMBER, READER}), MEMBER: frozenset({MEMBER, READER}),
           READER: frozenset({READER})}


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    role: str
    # Agents may call it too, for their own host only when host_field is set
    # (a dotted path into the request: "host", "node.host", "chunk.host").
    agent: bool = False
    host_field: str = ""


def _r(role: str) -> Rule:
    return Rule(role)


R, M, A, S = _r(READER), _r(MEMBER), _r(ADMIN), _r(SERVICE)
HOST = Rule(SERVICE, agent=True, host_field="host")
AGENT_READ = Rule(READER, agent=True)   # an agent fetching a server's image

# service full name -> method -> rule. Grouped by service; keep it that way.
TABLE: dict[str, dict[str, Rule]] = {
    "nimbus.compute.v1.ComputeService": {
        "CreateServer": M, "GetServer": R, "ListServers": R, "DeleteServer": M,
        "WatchServers": R, "StopServer": M, "StartServer": M, "RebootServer": M,
        # Console output can hold what a guest printed: Nova's policy is member.
        "GetConsoleOutput": M,
        "ResizeServer": M, "ConfirmServerResize": M, "RevertServerResize": M,
        "MigrateServer": A, "ListServerMigrations": R,
        "ListFlavors": R, "GetFlavor": R, "CreateFlavor": A,
        "AddFlavorAccess": A, "RemoveFlavorAccess": A, "ListFlavorAccess": A,
        "ListImages": R, "GetImage": AGENT_READ, "CreateImage": M, "DeleteImage": M,
        "UpdateImage": M, "AddImageMember": M, "RemoveImageMember": M, "ListImageMembers": R,
        "UpdateImageMember": M,
        "AttachVolume": M, "DetachVolume": M, "ListVolumeAttachments": R,
        "DownloadImage": AGENT_READ,
    },
    "nimbus.compute.v1.Ec2Service": {
        "RunInstances": M, "DescribeImages": R, "DescribeVolumes": R, "DescribeSnapshots": R,
    },
    "nimbus.compute.v1.HypervisorService": {
        "ListHypervisors": A, "GetHypervisor": A, "DisableComputeService": A,
        "EnableComputeService": A,
    },
    "nimbus.compute.v1.InstanceActionService": {"ListInstanceActions": R, "GetInstanceAction": R},
    "nimbus.compute.v1.MigrationService": {"ListMigrations": A},
    "nimbus.compute.v1.QuotaService": {
        "GetQuotas": R, "GetQuotaUsage": R, "UpdateQuotas": A, "DeleteQuotas": A,
    },
    "nimbus.compute.v1.KeypairService": {
        "CreateKeypair": M, "ImportKeypair": M, "GetKeypair": R, "ListKeypairs": R,
        "DeleteKeypair": M,
    },
    "nimbus.compute.v1.SecurityGroupService": {
        "CreateSecurityGroup": M, "GetSecurityGroup": R, "ListSecurityGroups": R,
        "UpdateSecurityGroup": M, "DeleteSecurityGroup": M, "CreateSecurityGroupRule": M,
        "DeleteSecurityGroupRule": M,
    },
    "nimbus.compute.v1.ServerGroupService": {
        "CreateServerGroup": M, "GetServerGroup": R, "ListServerGroups": R,
        "DeleteServerGroup": M,
    },
    "nimbus.compute.v1.AggregateService": {
        "CreateAggregate": A, "GetAggregate": A, "ListAggregates": A, "UpdateAggregate": A,
        "DeleteAggregate": A, "AddAggregateHost": A, "RemoveAggregateHost": A,
        "ListAvailabilityZones": R,
    },
    "nimbus.compute.v1.NetworkService": {
        "CreateNetwork": M, "GetNetwork": R, "ListNetworks": R, "UpdateNetwork": M,
        "DeleteNetwork": M, "CreateSubnet": M, "GetSubnet": R, "ListSubnets": R,
        "UpdateSubnet": M, "DeleteSubnet": M, "CreatePort": M, "GetPort": R, "ListPorts": R,
        "UpdatePort": M, "DeletePort": M,
    },
    "nimbus.volume.v1.VolumeService": {
        "CreateVolume": M, "GetVolume": R, "ListVolumes": R, "UpdateVolume": M,
        "ExtendVolume": M, "DeleteVolume": M, "WatchVolumes": R,
        "CreateSnapshot": M, "GetSnapshot": R, "ListSnapshots": R, "DeleteSnapshot": M,
        "WatchSnapshots": R, "CreateVolumeType": A, "ListVolumeTypes": R,
    },
    # Internal: agents for their own host, the other services for the rest.
    "nimbus.conductor.v1.ConductorService": {
        "ReportNode": Rule(SERVICE, agent=True, host_field="node.host"),
        "StreamAssignments": HOST, "UpdateInstance": HOST, "RescheduleInstance": HOST,
        "FinishDeleteInstance": HOST, "AllocateNetworks": HOST, "CheckServerGroup": HOST,
        "ReturnConsoleOutput": HOST, "AdvanceMigration": HOST, "FetchDisks": HOST,
        "CompleteVolumeAttachment": HOST,
        # Client-streamed: every chunk that names a host must name the agent's.
        "PushDisks": Rule(SERVICE, agent=True, host_field="chunk.host"),
        "GetConsoleOutput": S,   # the compute API asks for a user
    },
    "nimbus.scheduler.v1.SchedulerService": {"SelectDestinations": S},
    "nimbus.database.v1.DatabaseService": {
        "CreateInstance": M, "GetInstance": R, "ListInstances": R, "DeleteInstance": M,
        "WatchInstances": R, "RestartInstance": M, "ListDatabases": R, "CreateDatabase": M,
        "DeleteDatabase": M, "ListUsers": R, "CreateUser": M, "DeleteUser": M,
        "GrantAccess": M, "RevokeAccess": M, "EnableRoot": M, "IsRootEnabled": R,
        "DetachReplica": M, "ResizeVolume": M, "ResizeInstance": M,
    },
    "nimbus.database.v1.BackupService": {
        "CreateBackup": M, "GetBackup": R, "ListBackups": R, "DeleteBackup": M,
        "WatchBackups": R,
    },
    "nimbus.database.v1.DatastoreService": {
        "CreateDatastore": A, "GetDatastore": R, "ListDatastores": R, "DeleteDatastore": A,
        "PutVersion": A, "DeleteVersion": A, "SetDefaultVersion": A,
    },
    # The guest's identity is checked by the hub (its own guest only).
    "nimbus.database.v1.GuestAgentService": {
        "Connect": Rule(GUEST), "UploadBackup": Rule(GUEST), "DownloadBackup": Rule(GUEST),
    },
}

# Open on every port: probes and grpcurl's discovery (they reveal no record).
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# "/pkg.Service/Method" -> rule, built once for the interceptor.
BY_PATH: dict[str, Rule] = {f"/{service}/{method}": rule
                            for service, methods in TABLE.items()
                            for method, rule in methods.items()}


def rule_for(path: str) -> Rule | None:
    return BY_PATH.get(path)


def allows(rule: Rule, roles: frozenset[str]) -> bool:
    """Whether holders of `roles` pass `rule` (host scoping aside)."""
    if SERVICE in roles:
        return True
    if AGENT in roles:
        return rule.agent
    if rule.role in IMPLIED:
        return any(rule.role in IMPLIED.get(role, ()) for role in roles)
    return rule.role in roles


def field_value(message, path: str) -> str:
    """The string at a dotted path of a request message ("" when unset)."""
    value = message
    for part in path.split("."):
        value = getattr(value, part)
    return value
