"""SecurityGroupService: a project's security groups, each stored with its
rules at security-groups/<project>/<id>.

The default group. Every project has one group named "default" with a fixed
id (a UUIDv5 of the project id). The first List, Get or Create in a project
writes it with a create-if-absent transaction, so concurrent first calls
agree on one group. Its rules are Neutron's: ingress from members of the
group itself and any egress, for IPv4 and IPv6. It cannot be deleted or
renamed (FAILED_PRECONDITION); its rules can change.

Unique names without an index key: a create or rename lists the project's
groups and writes only if no key under the project's prefix changed since
that list (one range compare, `Store.prefix_unchanged`); on a lost race it lists
again. "default" is always taken.

Servers name their groups (Server.security_groups holds names, as Nova's
API does), so deleting or renaming a group that a server of the project
names is refused (FAILED_PRECONDITION). Deleting a group also removes the
rules of other groups that name it as remote_group_id (Neutron cascades),
in the same transaction.

References: an unknown or other project's group id is NOT_FOUND
(ResourceInfo security_group); a malformed id is NOT_FOUND as well, like a
server id.
"""

from __future__ import annotations

import ipaddress
import uuid


from nimbus.ids import is_uuid
from nimbus import errors, log, pagination
from nimbus.compute.v1 import security_groups_pb2 as S, security_groups_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.compute.validation import validate_name
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.store import Store, Versioned, now

_log = log.get("nimbus.compute.security_groups")
R = S.SecurityGroupRule

DEFAULT = "default"
MAX_DESCRIPTION = 255
MAX_RULES = 100          # per group (Neutron's default security_group_rule quota)
ATTEMPTS = 50            # lost races before answering UNAVAILABLE
# Fixed namespace for the default groups' ids: uuid5(_NAMESPACE, project id).
_NAMESPACE = uuid.UUID("6f1b8d7e-3c55-4a8e-9a43-2f0b5d0c9e11")


def validate_description(value: str, field: str = "description") -> str:
    if len(value) > MAX_DESCRIPTION:
        raise errors.InvalidArgument(field, f"must be at most {MAX_DESCRIPTION} characters")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
        raise errors.InvalidArgument(field, "must not contain control characters")
    return value


# ---- the default group ---------------------------------------------------------

def default_group_id(project_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, project_id))


def _egress_rules(group_id: str, created) -> list[S.SecurityGroupRule]:
    return [R(id=str(uuid.uuid4()), security_group_id=group_id, direction=R.DIRECTION_EGRESS,
              ethertype=ether, protocol=R.PROTOCOL_ANY, created_at=created)
            for ether in (R.ETHER_TYPE_IPV4, R.ETHER_TYPE_IPV6)]


def default_group(project_id: str) -> S.SecurityGroup:
    group_id = default_group_id(project_id)
    created = now()
    group = S.SecurityGroup(id=group_id, name=DEFAULT, description="Default security group",
                            project_id=project_id, created_at=created, updated_at=created)
    for ether in (R.ETHER_TYPE_IPV4, R.ETHER_TYPE_IPV6):
        group.rules.append(R(id=str(uuid.uuid4()), security_group_id=group_id,
                             direction=R.DIRECTION_INGRESS, ethertype=ether,
                             protocol=R.PROTOCOL_ANY, remote_group_id=group_id,
                             created_at=created))
    group.rules.extend(_egress_rules(group_id, created))
    return group


async def ensure_default_group(store: Store, project_id: str) -> None:
    """Write the project's default group unless it exists (race-safe)."""
    key = keys.security_group(project_id, default_group_id(project_id))
    if await store.get_raw(key) is not None:
        return
    resp = await store.txn([store.mod_is(key, 0)], [store.put(key, default_group(project_id))])
    if resp.succeeded:
        _log.info("default security group created", project_id=project_id)


def _prefix(project_id: str) -> str:
    return f"{keys.SECURITY_GROUPS}{project_id}/"


async def list_groups(store: Store, project_id: str) -> tuple[list[Versioned], int]:
    """The project's groups (the default one included) and the read's revision."""
    items, revision = await store.list(_prefix(project_id), S.SecurityGroup)
    if keys.security_group(project_id, default_group_id(project_id)) not in dict(items):
        await ensure_default_group(store, project_id)
        items, revision = await store.list(_prefix(project_id), S.SecurityGroup)
    # The record's project, not only the key prefix, decides ownership.
    return [v for _, v in items if v.msg.project_id == project_id], revision


async def get_group(store: Store, project_id: str, group_id: str,
                    kind: str = "security_group") -> Versioned:
    if group_id == default_group_id(project_id):
        await ensure_default_group(store, project_id)
    found = None
    if is_uuid(group_id):
        found = await store.get(keys.security_group(project_id, group_id), S.SecurityGroup)
    if found is None or found.msg.project_id != project_id:
        raise errors.NotFound(kind, group_id)
    return found


async def resolve_security_groups(store: Store, project_id: str, names,
                                  field: str = "security_groups") -> list[S.SecurityGroup]:
    """For CreateServer: the project's groups by name (or id), de-duplicated,
    "default" when `names` is empty; NOT_FOUND security_group otherwise."""
    wanted = list(dict.fromkeys(names)) or [DEFAULT]
    groups, _ = await list_groups(store, project_id)
    by_name = {g.msg.name: g.msg for g in groups}
    by_id = {g.msg.id: g.msg for g in groups}
    out = []
    for ref in wanted:
        group = by_name.get(ref) or by_id.get(ref)
        if group is None:
            raise errors.NotFound("security_group", ref)
        if group not in out:
            out.append(group)
    return out


async def _servers_naming(store: Store, project_id: str, name: str) -> list[str]:
    """Ids of the project's servers that name the group."""
    items, _ = await store.list(keys.INSTANCES, records_pb2.InstanceRecord)
    return [v.msg.server.id for _, v in items
            if v.msg.server.project_id == project_id and name in v.msg.server.security_groups]


# ---- rules -------------------------------------------------------------------------

def _port(value: int, field: str, high: int) -> int:
    if not 0 <= value <= high:
        raise errors.InvalidArgument(field, f"must be between 0 and {high}")
    return value


def build_rule(request: S.CreateSecurityGroupRuleRequest) -> S.SecurityGroupRule:
    """The rule a request describes, checked and normalized (no id yet)."""
    if request.direction not in (R.DIRECTION_INGRESS, R.DIRECTION_EGRESS):
        raise errors.InvalidArgument("direction", "is required: ingress or egress")
    if request.ethertype not in (R.ETHER_TYPE_UNSPECIFIED, R.ETHER_TYPE_IPV4, R.ETHER_TYPE_IPV6):
        raise errors.InvalidArgument("ethertype", "must be IPv4 or IPv6")
    protocol = request.protocol or R.PROTOCOL_ANY
    if protocol not in (R.PROTOCOL_ANY, R.PROTOCOL_TCP, R.PROTOCOL_UDP, R.PROTOCOL_ICMP):
        raise errors.InvalidArgument("protocol", "must be tcp, udp, icmp or any")
    rule = R(direction=request.direction, protocol=protocol,
             description=validate_description(request.description))

    ethertype = request.ethertype
    if request.remote_ip_prefix and request.remote_group_id:
        raise errors.InvalidArgument("remote_group_id", "cannot be combined with remote_ip_prefix")
    if request.remote_ip_prefix:
        try:
            net = ipaddress.ip_network(request.remote_ip_prefix.strip(), strict=False)
        except ValueError:
            raise errors.InvalidArgument("remote_ip_prefix",
                                         f"{request.remote_ip_prefix!r} is not a CIDR") from None
        version = R.ETHER_TYPE_IPV4 if net.version == 4 else R.ETHER_TYPE_IPV6
        if ethertype and ethertype != version:
            raise errors.InvalidArgument(
                "remote_ip_prefix", f"is IPv{net.version} but ethertype is "
                                    f"{'IPv4' if ethertype == R.ETHER_TYPE_IPV4 else 'IPv6'}")
        ethertype = version
        rule.remote_ip_prefix = str(net)
    rule.ethertype = ethertype or R.ETHER_TYPE_IPV4
    rule.remote_group_id = request.remote_group_id

    has_min, has_max = request.HasField("port_range_min"), request.HasField("port_range_max")
    if protocol == R.PROTOCOL_ANY:
        if has_min or has_max:
            raise errors.InvalidArgument("port_range_min" if has_min else "port_range_max",
                                         "only tcp, udp and icmp rules take ports")
    elif has_min or has_max:
        if not has_min:
            raise errors.InvalidArgument("port_range_min", "is required with port_range_max")
        high = 255 if protocol == R.PROTOCOL_ICMP else 65535
        low = _port(request.port_range_min, "port_range_min", high)
        rule.port_range_min = low
        if has_max:
            top = _port(request.port_range_max, "port_range_max", high)
            if protocol != R.PROTOCOL_ICMP and top < low:
                raise errors.InvalidArgument("port_range_max",
                                             "must be greater than or equal to port_range_min")
            rule.port_range_max = top
        elif protocol != R.PROTOCOL_ICMP:
            rule.port_range_max = low
    return rule


def _same_rule(a: S.SecurityGroupRule, b: S.SecurityGroupRule) -> bool:
    fields = ("direction", "ethertype", "protocol", "remote_ip_prefix", "remote_group_id")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and all(
        (a.HasField(f), getattr(a, f)) == (b.HasField(f), getattr(b, f))
        for f in ("port_range_min", "port_range_max"))


# ---- the service ------------------------------------------------------------------

class SecurityGroupServicer(security_groups_pb2_grpc.SecurityGroupServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def _write_named(self, project_id: str, name: str, group: S.SecurityGroup,
                           current: Versioned | None, is_new: bool) -> None:
        """Write `group` if no other group of the project has `name`; retries lost races."""
        store = self.store
        key = keys.security_group(project_id, group.id)
        for _ in range(ATTEMPTS):
            groups, revision = await list_groups(store, project_id)
            if any(g.msg.name == name and g.msg.id != group.id for g in groups):
                raise errors.AlreadyExists(f"a security group named {name!r} exists")
            if is_new:
                compares = [store.mod_is(key, 0)]
            else:
                mine = next((g for g in groups if g.msg.id == group.id), None)
                if mine is None or mine.mod_revision != current.mod_revision:
                    raise _Changed()
                compares = [store.mod_is(key, current.mod_revision)]
            resp = await store.txn([store.prefix_unchanged(_prefix(project_id), revision),
                                    *compares], [store.put(key, group)])
            if resp.succeeded:
                return
        raise errors.Unavailable("too many concurrent changes to this project's security groups")

    async def CreateSecurityGroup(self, request, context):
        who = auth.identity()
        name = validate_name(request.name)
        description = validate_description(request.description)
        created = now()
        group_id = str(uuid.uuid4())
        group = S.SecurityGroup(id=group_id, name=name, description=description,
                                project_id=who.project_id, created_at=created, updated_at=created,
                                rules=_egress_rules(group_id, created))
        await self._write_named(who.project_id, name, group, None, is_new=True)
        _log.info("security group created", security_group_id=group_id)
        return S.CreateSecurityGroupResponse(security_group=group)

    async def GetSecurityGroup(self, request, context):
        who = auth.identity()
        if not request.id:
            raise errors.InvalidArgument("id", "is required")
        await ensure_default_group(self.store, who.project_id)
        found = await get_group(self.store, who.project_id, request.id)
        return S.GetSecurityGroupResponse(security_group=found.msg)

    async def ListSecurityGroups(self, request, context):
        who = auth.identity()
        groups, _ = await list_groups(self.store, who.project_id)
        page, token = pagination.page_of(request, [g.msg for g in groups],
                                         lambda g: [g.name, g.id], who.project_id)
        return S.ListSecurityGroupsResponse(security_groups=page, next_page_token=token)

    async def UpdateSecurityGroup(self, request, context):
        who = auth.identity()
        if not request.id:
            raise errors.InvalidArgument("id", "is required")
        name = validate_name(request.name) if request.HasField("name") else None
        description = (validate_description(request.description)
                       if request.HasField("description") else None)
        for _ in range(ATTEMPTS):
            current = await get_group(self.store, who.project_id, request.id)
            group = S.SecurityGroup()
            group.CopyFrom(current.msg)
            if name is not None and name != group.name:
                if group.id == default_group_id(who.project_id):
                    raise errors.FailedPrecondition("the default security group cannot be renamed")
                users = await _servers_naming(self.store, who.project_id, group.name)
                if users:
                    raise errors.FailedPrecondition(
                        f"security group {group.name!r} is in use by {len(users)} server(s) "
                        "(servers name their groups)")
                group.name = name
            if description is not None:
                group.description = description
            group.updated_at.CopyFrom(now())
            try:
                await self._write_named(who.project_id, group.name, group, current, is_new=False)
            except _Changed:
                continue
            return S.UpdateSecurityGroupResponse(security_group=group)
        raise errors.Unavailable("too many concurrent changes to this security group")

    async def DeleteSecurityGroup(self, request, context):
        who = auth.identity()
        if not request.id:
            raise errors.InvalidArgument("id", "is required")
        store, project = self.store, who.project_id
        for _ in range(ATTEMPTS):
            target = await get_group(store, project, request.id)
            if target.msg.id == default_group_id(project):
                raise errors.FailedPrecondition("the default security group cannot be deleted")
            users = await _servers_naming(store, project, target.msg.name)
            if users:
                raise errors.FailedPrecondition(
                    f"security group {target.msg.name!r} is in use by {len(users)} server(s)")
            groups, revision = await list_groups(store, project)
            # Nothing in the project may change before we write: a rule naming
            # this group, added meanwhile, would escape the cascade.
            compares = [store.prefix_unchanged(_prefix(project), revision),
                        store.mod_is(keys.security_group(project, target.msg.id),
                                     target.mod_revision)]
            ops = [store.delete(keys.security_group(project, target.msg.id))]
            for g in groups:   # Neutron's cascade: rules naming it as their remote group go
                if g.msg.id == target.msg.id:
                    continue
                kept = [r for r in g.msg.rules if r.remote_group_id != target.msg.id]
                if len(kept) != len(g.msg.rules):
                    changed = S.SecurityGroup()
                    changed.CopyFrom(g.msg)
                    del changed.rules[:]
                    changed.rules.extend(kept)
                    changed.updated_at.CopyFrom(now())
                    gkey = keys.security_group(project, g.msg.id)
                    compares.append(store.mod_is(gkey, g.mod_revision))
                    ops.append(store.put(gkey, changed))
            resp = await store.txn(compares, ops)
            if resp.succeeded:
                _log.info("security group deleted", security_group_id=target.msg.id)
                return S.DeleteSecurityGroupResponse()
        raise errors.Unavailable("too many concurrent changes to this project's security groups")

    async def CreateSecurityGroupRule(self, request, context):
        who = auth.identity()
        if not request.security_group_id:
            raise errors.InvalidArgument("security_group_id", "is required")
        rule = build_rule(request)
        store, project = self.store, who.project_id
        for _ in range(ATTEMPTS):
            current = await get_group(store, project, request.security_group_id)
            gkey = keys.security_group(project, current.msg.id)
            compares = [store.mod_is(gkey, current.mod_revision)]
            if rule.remote_group_id and rule.remote_group_id != current.msg.id:
                remote = await get_group(store, project, rule.remote_group_id)
                # The remote group must still exist when we write (its delete
                # would otherwise miss this rule in its cascade).
                compares.append(store.mod_is(keys.security_group(project, remote.msg.id),
                                             remote.mod_revision))
            if any(_same_rule(rule, r) for r in current.msg.rules):
                raise errors.AlreadyExists("the security group already has this rule")
            if len(current.msg.rules) >= MAX_RULES:
                raise errors.ResourceExhausted(f"a security group has at most {MAX_RULES} rules")
            group = S.SecurityGroup()
            group.CopyFrom(current.msg)
            new = group.rules.add()
            new.CopyFrom(rule)
            new.id, new.security_group_id = str(uuid.uuid4()), group.id
            new.created_at.CopyFrom(now())
            group.updated_at.CopyFrom(new.created_at)
            resp = await store.txn(compares, [store.put(gkey, group)])
            if resp.succeeded:
                return S.CreateSecurityGroupRuleResponse(rule=new)
        raise errors.Unavailable("too many concurrent changes to this security group")

    async def DeleteSecurityGroupRule(self, request, context):
        who = auth.identity()
        if not request.id:
            raise errors.InvalidArgument("id", "is required")
        store, project = self.store, who.project_id
        for _ in range(ATTEMPTS):
            groups, _ = await list_groups(store, project)
            owner = next((g for g in groups if any(r.id == request.id for r in g.msg.rules)), None)
            if owner is None:
                raise errors.NotFound("security_group_rule", request.id)
            group = S.SecurityGroup()
            group.CopyFrom(owner.msg)
            kept = [r for r in group.rules if r.id != request.id]
            del group.rules[:]
            group.rules.extend(kept)
            group.updated_at.CopyFrom(now())
            gkey = keys.security_group(project, group.id)
            resp = await store.txn([store.mod_is(gkey, owner.mod_revision)],
                                   [store.put(gkey, group)])
            if resp.succeeded:
                return S.DeleteSecurityGroupRuleResponse()
        raise errors.Unavailable("too many concurrent changes to this security group")


class _Changed(Exception):
    """The group changed between our read and our write: start over."""

