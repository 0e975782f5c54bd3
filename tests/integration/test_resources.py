"""Key pairs, security groups, server groups and aggregates/availability
zones through real gRPC on a real stack (etcd, agents, the API)."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid

import grpc
import pytest
from aetcd import rpc as etcd_rpc
from google.protobuf import empty_pb2

from nimbus import errors
from nimbus.compute.v1 import aggregates_pb2 as A
from nimbus.compute.v1 import aggregates_pb2_grpc
from nimbus.compute.v1 import keypairs_pb2 as K
from nimbus.compute.v1 import keypairs_pb2_grpc
from nimbus.compute.v1 import security_groups_pb2 as S
from nimbus.compute.v1 import security_groups_pb2_grpc
from nimbus.compute.v1 import server_groups_pb2 as G
from nimbus.compute.v1 import server_groups_pb2_grpc
from nimbus import servergroups
from nimbus.services.compute import aggregates, security_groups
from nimbus.services.compute.security_groups import default_group_id
from nimbus.store import keys
from nimbus.store.store import prefix_end
from stack import ADMIN, C, Stack, expect, user

R = S.SecurityGroupRule
SG = G.ServerGroup
CODE = grpc.StatusCode
# Key generation needs ssh-keygen (openssh-client): skipped without it, except under CI.
needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None and os.environ.get("CI") != "true",
    reason="ssh-keygen (openssh-client) is not installed")
ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhsc"
           "HR4f me@host")




class Api:
    def __init__(self, stack: Stack):
        self.keypairs = keypairs_pb2_grpc.KeypairServiceStub(stack.channel)
        self.security_groups = security_groups_pb2_grpc.SecurityGroupServiceStub(stack.channel)
        self.server_groups = server_groups_pb2_grpc.ServerGroupServiceStub(stack.channel)
        self.aggregates = aggregates_pb2_grpc.AggregateServiceStub(stack.channel)


async def _start(etcd, state_dir, qcow2_image):
    stack = Stack(etcd.endpoint, state_dir, hosts=2)
    await stack.__aenter__()
    stack.r = Api(stack)
    stack.store = stack.compute.store
    await stack.flavor("m1.tiny")
    await stack.image(qcow2_image)
    return stack


@pytest.fixture(scope="module")
async def stack(etcd, tmp_path_factory, qcow2_image):
    s = await _start(etcd, str(tmp_path_factory.mktemp("resources")), qcow2_image)
    yield s
    await s.__aexit__(None, None, None)


def project() -> str:
    return "p-" + uuid.uuid4().hex[:8]


# ---- the table of bad requests ------------------------------------------------------

TABLE_PROJECT = "tbl"
ME = user("alice", TABLE_PROJECT)


@pytest.fixture(scope="module")
async def ids(stack):
    """Records the table's requests refer to (made once)."""
    r = stack.r
    web = (await r.security_groups.CreateSecurityGroup(
        S.CreateSecurityGroupRequest(name="web"), metadata=ME)).security_group
    await r.security_groups.CreateSecurityGroup(S.CreateSecurityGroupRequest(name="db"),
                                                metadata=ME)
    await r.keypairs.ImportKeypair(K.ImportKeypairRequest(name="mine", public_key=ED25519),
                                   metadata=ME)
    # The first call in a project writes its default group: done here, not in a case.
    await r.security_groups.ListSecurityGroups(S.ListSecurityGroupsRequest(),
                                               metadata=user("alice", "elsewhere"))
    hosts = sorted(a.host for a in stack.agents.agents)
    az1 = (await r.aggregates.CreateAggregate(A.CreateAggregateRequest(
        name="tbl-az1", availability_zone="tbl-az1"), metadata=ADMIN)).aggregate
    az2 = (await r.aggregates.CreateAggregate(A.CreateAggregateRequest(
        name="tbl-az2", availability_zone="tbl-az2"), metadata=ADMIN)).aggregate
    await r.aggregates.AddAggregateHost(A.AddAggregateHostRequest(id=az1.id, host=hosts[0]),
                                        metadata=ADMIN)
    yield {"web": web.id, "default": default_group_id(TABLE_PROJECT), "az1": az1.id,
           "az2": az2.id, "host": hosts[0]}
    await r.aggregates.RemoveAggregateHost(A.RemoveAggregateHostRequest(id=az1.id, host=hosts[0]),
                                           metadata=ADMIN)
    for agg in (az1, az2):
        await r.aggregates.DeleteAggregate(A.DeleteAggregateRequest(id=agg.id), metadata=ADMIN)


NOPE = "00000000-0000-4000-8000-000000000000"
kp, sg, sv, ag = "keypairs", "security_groups", "server_groups", "aggregates"
INV, NF, AE, FP, PD = (CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.ALREADY_EXISTS,
                       CODE.FAILED_PRECONDITION, CODE.PERMISSION_DENIED)


def rule(**kw):
    return lambda i: S.CreateSecurityGroupRuleRequest(
        security_group_id=i["web"], **{"direction": R.DIRECTION_INGRESS, **kw})


BAD = [
    # key pairs
    ("kp-name-empty", kp, "CreateKeypair", K.CreateKeypairRequest(name=""), ME, INV, "name"),
    ("kp-name-blank", kp, "CreateKeypair", K.CreateKeypairRequest(name="   "), ME, INV, "name"),
    ("kp-name-long", kp, "CreateKeypair", K.CreateKeypairRequest(name="x" * 256), ME, INV, "name"),
    ("kp-name-slash", kp, "CreateKeypair", K.CreateKeypairRequest(name="a/b"), ME, INV, "name"),
    ("kp-name-chars", kp, "ImportKeypair",
     K.ImportKeypairRequest(name="a;b", public_key=ED25519), ME, INV, "name"),
    ("kp-algorithm", kp, "CreateKeypair", K.CreateKeypairRequest(name="k", algorithm=9), ME, INV,
     "algorithm"),
    ("kp-import-empty", kp, "ImportKeypair", K.ImportKeypairRequest(name="k"), ME, INV,
     "public_key"),
    ("kp-key-no-body", kp, "ImportKeypair",
     K.ImportKeypairRequest(name="k", public_key="ssh-ed25519"), ME, INV, "public_key"),
    ("kp-key-type", kp, "ImportKeypair",
     K.ImportKeypairRequest(name="k", public_key="ssh-dss AAAAB3NzaC1kc3M="), ME, INV, "public_key"),
    ("kp-key-base64", kp, "CreateKeypair",
     K.CreateKeypairRequest(name="k", public_key="ssh-ed25519 %%%"), ME, INV, "public_key"),
    ("kp-key-mismatch", kp, "ImportKeypair",
     K.ImportKeypairRequest(name="k", public_key="ssh-rsa" + ED25519[len("ssh-ed25519"):]),
     ME, INV, "public_key"),
    ("kp-duplicate", kp, "ImportKeypair",
     K.ImportKeypairRequest(name="mine", public_key=ED25519), ME, AE, ""),
    ("kp-duplicate-generate", kp, "CreateKeypair", K.CreateKeypairRequest(name="mine"), ME, AE, ""),
    ("kp-get-empty", kp, "GetKeypair", K.GetKeypairRequest(name=""), ME, INV, "name"),
    ("kp-get-unknown", kp, "GetKeypair", K.GetKeypairRequest(name="nope"), ME, NF, "keypair"),
    ("kp-get-other-user", kp, "GetKeypair", K.GetKeypairRequest(name="mine"),
     user("bob", TABLE_PROJECT), NF, "keypair"),
    ("kp-delete-unknown", kp, "DeleteKeypair", K.DeleteKeypairRequest(name="nope"), ME, NF,
     "keypair"),
    ("kp-list-other-user", kp, "ListKeypairs", K.ListKeypairsRequest(user_id="bob"), ME, PD, ""),
    ("kp-create-other-user", kp, "ImportKeypair",
     K.ImportKeypairRequest(name="k", public_key=ED25519, user_id="bob"), ME, PD, ""),
    # security groups
    ("sg-name-empty", sg, "CreateSecurityGroup", S.CreateSecurityGroupRequest(name=""), ME, INV,
     "name"),
    ("sg-name-long", sg, "CreateSecurityGroup", S.CreateSecurityGroupRequest(name="x" * 256), ME,
     INV, "name"),
    ("sg-description", sg, "CreateSecurityGroup",
     S.CreateSecurityGroupRequest(name="d", description="x" * 256), ME, INV, "description"),
    ("sg-name-default", sg, "CreateSecurityGroup", S.CreateSecurityGroupRequest(name="default"),
     ME, AE, ""),
    ("sg-name-taken", sg, "CreateSecurityGroup", S.CreateSecurityGroupRequest(name="web"), ME, AE,
     ""),
    ("sg-get-empty", sg, "GetSecurityGroup", S.GetSecurityGroupRequest(), ME, INV, "id"),
    ("sg-get-unknown", sg, "GetSecurityGroup", S.GetSecurityGroupRequest(id=NOPE), ME, NF,
     "security_group"),
    ("sg-get-malformed", sg, "GetSecurityGroup", S.GetSecurityGroupRequest(id="../x"), ME, NF,
     "security_group"),
    ("sg-get-other-project", sg, "GetSecurityGroup", lambda i: S.GetSecurityGroupRequest(id=i["web"]),
     user("alice", "elsewhere"), NF, "security_group"),
    ("sg-delete-default", sg, "DeleteSecurityGroup",
     lambda i: S.DeleteSecurityGroupRequest(id=i["default"]), ME, FP, ""),
    ("sg-rename-default", sg, "UpdateSecurityGroup",
     lambda i: S.UpdateSecurityGroupRequest(id=i["default"], name="other"), ME, FP, ""),
    ("sg-rename-taken", sg, "UpdateSecurityGroup",
     lambda i: S.UpdateSecurityGroupRequest(id=i["web"], name="db"), ME, AE, ""),
    ("sg-rename-to-default", sg, "UpdateSecurityGroup",
     lambda i: S.UpdateSecurityGroupRequest(id=i["web"], name="default"), ME, AE, ""),
    ("sg-update-blank-name", sg, "UpdateSecurityGroup",
     lambda i: S.UpdateSecurityGroupRequest(id=i["web"], name=" "), ME, INV, "name"),
    ("sg-delete-unknown", sg, "DeleteSecurityGroup", S.DeleteSecurityGroupRequest(id=NOPE), ME, NF,
     "security_group"),
    ("rule-group-empty", sg, "CreateSecurityGroupRule",
     S.CreateSecurityGroupRuleRequest(direction=R.DIRECTION_INGRESS), ME, INV, "security_group_id"),
    ("rule-group-unknown", sg, "CreateSecurityGroupRule",
     S.CreateSecurityGroupRuleRequest(security_group_id=NOPE, direction=R.DIRECTION_INGRESS), ME,
     NF, "security_group"),
    ("rule-direction", sg, "CreateSecurityGroupRule",
     lambda i: S.CreateSecurityGroupRuleRequest(security_group_id=i["web"]), ME, INV, "direction"),
    ("rule-ethertype", sg, "CreateSecurityGroupRule", rule(ethertype=7), ME, INV, "ethertype"),
    ("rule-protocol", sg, "CreateSecurityGroupRule", rule(protocol=9), ME, INV, "protocol"),
    ("rule-port-high", sg, "CreateSecurityGroupRule",
     rule(protocol=R.PROTOCOL_TCP, port_range_min=70000), ME, INV, "port_range_min"),
    ("rule-port-negative", sg, "CreateSecurityGroupRule",
     rule(protocol=R.PROTOCOL_UDP, port_range_min=-1), ME, INV, "port_range_min"),
    ("rule-port-max-high", sg, "CreateSecurityGroupRule",
     rule(protocol=R.PROTOCOL_TCP, port_range_min=1, port_range_max=65536), ME, INV,
     "port_range_max"),
    ("rule-port-order", sg, "CreateSecurityGroupRule",
     rule(protocol=R.PROTOCOL_TCP, port_range_min=443, port_range_max=80), ME, INV,
     "port_range_max"),
    ("rule-port-max-only", sg, "CreateSecurityGroupRule",
     rule(protocol=R.PROTOCOL_TCP, port_range_max=80), ME, INV, "port_range_min"),
    ("rule-port-any", sg, "CreateSecurityGroupRule", rule(port_range_min=22), ME, INV,
     "port_range_min"),
    ("rule-icmp-type", sg, "CreateSecurityGroupRule",
     rule(protocol=R.PROTOCOL_ICMP, port_range_min=256), ME, INV, "port_range_min"),
    ("rule-cidr", sg, "CreateSecurityGroupRule", rule(remote_ip_prefix="10.0.0.0/33"), ME, INV,
     "remote_ip_prefix"),
    ("rule-cidr-garbage", sg, "CreateSecurityGroupRule", rule(remote_ip_prefix="anywhere"), ME,
     INV, "remote_ip_prefix"),
    ("rule-cidr-version", sg, "CreateSecurityGroupRule",
     rule(ethertype=R.ETHER_TYPE_IPV4, remote_ip_prefix="::/0"), ME, INV, "remote_ip_prefix"),
    ("rule-remote-both", sg, "CreateSecurityGroupRule",
     lambda i: rule(remote_ip_prefix="10.0.0.0/8", remote_group_id=i["default"])(i), ME, INV,
     "remote_group_id"),
    ("rule-remote-unknown", sg, "CreateSecurityGroupRule", rule(remote_group_id=NOPE), ME, NF,
     "security_group"),
    ("rule-description", sg, "CreateSecurityGroupRule", rule(description="x" * 256), ME, INV,
     "description"),
    ("rule-duplicate-default", sg, "CreateSecurityGroupRule",
     rule(direction=R.DIRECTION_EGRESS), ME, AE, ""),       # the new group's IPv4 egress rule
    ("rule-delete-unknown", sg, "DeleteSecurityGroupRule",
     S.DeleteSecurityGroupRuleRequest(id=NOPE), ME, NF, "security_group_rule"),
    ("rule-delete-empty", sg, "DeleteSecurityGroupRule", S.DeleteSecurityGroupRuleRequest(), ME,
     INV, "id"),
    # server groups
    ("svg-name", sv, "CreateServerGroup",
     G.CreateServerGroupRequest(policy=SG.POLICY_AFFINITY), ME, INV, "name"),
    ("svg-policy", sv, "CreateServerGroup", G.CreateServerGroupRequest(name="g"), ME, INV,
     "policy"),
    ("svg-policy-unknown", sv, "CreateServerGroup",
     G.CreateServerGroupRequest(name="g", policy=42), ME, INV, "policy"),
    ("svg-rules-affinity", sv, "CreateServerGroup", G.CreateServerGroupRequest(
        name="g", policy=SG.POLICY_AFFINITY, rules=G.ServerGroupRules(max_server_per_host=2)),
     ME, INV, "rules"),
    ("svg-rules-max", sv, "CreateServerGroup", G.CreateServerGroupRequest(
        name="g", policy=SG.POLICY_ANTI_AFFINITY, rules=G.ServerGroupRules(max_server_per_host=-1)),
     ME, INV, "rules.max_server_per_host"),
    ("svg-get-unknown", sv, "GetServerGroup", G.GetServerGroupRequest(id=NOPE), ME, NF,
     "server_group"),
    ("svg-get-empty", sv, "GetServerGroup", G.GetServerGroupRequest(), ME, INV, "id"),
    ("svg-delete-unknown", sv, "DeleteServerGroup", G.DeleteServerGroupRequest(id="x"), ME, NF,
     "server_group"),
    ("svg-list-all", sv, "ListServerGroups", G.ListServerGroupsRequest(all_projects=True), ME,
     PD, ""),
    # aggregates (admin only) and zones
    ("agg-create-user", ag, "CreateAggregate", A.CreateAggregateRequest(name="a"), ME, PD, ""),
    ("agg-list-user", ag, "ListAggregates", A.ListAggregatesRequest(), ME, PD, ""),
    ("agg-get-user", ag, "GetAggregate", lambda i: A.GetAggregateRequest(id=i["az1"]), ME, PD, ""),
    ("agg-update-user", ag, "UpdateAggregate",
     lambda i: A.UpdateAggregateRequest(id=i["az1"], name="x"), ME, PD, ""),
    ("agg-delete-user", ag, "DeleteAggregate", lambda i: A.DeleteAggregateRequest(id=i["az2"]),
     ME, PD, ""),
    ("agg-add-host-user", ag, "AddAggregateHost",
     lambda i: A.AddAggregateHostRequest(id=i["az2"], host=i["host"]), ME, PD, ""),
    ("agg-remove-host-user", ag, "RemoveAggregateHost",
     lambda i: A.RemoveAggregateHostRequest(id=i["az1"], host=i["host"]), ME, PD, ""),
    ("agg-name", ag, "CreateAggregate", A.CreateAggregateRequest(), ADMIN, INV, "name"),
    ("agg-name-taken", ag, "CreateAggregate", A.CreateAggregateRequest(name="tbl-az1"), ADMIN, AE,
     ""),
    ("agg-zone-colon", ag, "CreateAggregate",
     A.CreateAggregateRequest(name="a", availability_zone="z:h"), ADMIN, INV, "availability_zone"),
    ("agg-zone-long", ag, "CreateAggregate",
     A.CreateAggregateRequest(name="a", availability_zone="z" * 256), ADMIN, INV,
     "availability_zone"),
    ("agg-zone-blank", ag, "CreateAggregate",
     A.CreateAggregateRequest(name="a", availability_zone="  "), ADMIN, INV, "availability_zone"),
    ("agg-metadata-key", ag, "CreateAggregate",
     A.CreateAggregateRequest(name="a", metadata={"": "v"}), ADMIN, INV, "metadata['']"),
    ("agg-get-unknown", ag, "GetAggregate", A.GetAggregateRequest(id=NOPE), ADMIN, NF, "aggregate"),
    ("agg-get-empty", ag, "GetAggregate", A.GetAggregateRequest(), ADMIN, INV, "id"),
    ("agg-add-unknown-host", ag, "AddAggregateHost",
     lambda i: A.AddAggregateHostRequest(id=i["az2"], host="no-such-host"), ADMIN, NF, "host"),
    ("agg-add-empty-host", ag, "AddAggregateHost",
     lambda i: A.AddAggregateHostRequest(id=i["az2"]), ADMIN, INV, "host"),
    ("agg-add-host-twice", ag, "AddAggregateHost",
     lambda i: A.AddAggregateHostRequest(id=i["az1"], host=i["host"]), ADMIN, AE, ""),
    ("agg-host-second-zone", ag, "AddAggregateHost",
     lambda i: A.AddAggregateHostRequest(id=i["az2"], host=i["host"]), ADMIN, FP, ""),
    ("agg-remove-non-member", ag, "RemoveAggregateHost",
     lambda i: A.RemoveAggregateHostRequest(id=i["az2"], host=i["host"]), ADMIN, NF, "host"),
    ("agg-rename-taken", ag, "UpdateAggregate",
     lambda i: A.UpdateAggregateRequest(id=i["az2"], name="tbl-az1"), ADMIN, AE, ""),
    ("agg-update-zone-colon", ag, "UpdateAggregate",
     lambda i: A.UpdateAggregateRequest(id=i["az2"], availability_zone="a:b"), ADMIN, INV,
     "availability_zone"),
    ("agg-update-metadata-conflict", ag, "UpdateAggregate",
     lambda i: A.UpdateAggregateRequest(id=i["az2"], metadata={"k": "v"}, remove_metadata=["k"]),
     ADMIN, INV, "remove_metadata[0]"),
    ("agg-delete-with-hosts", ag, "DeleteAggregate", lambda i: A.DeleteAggregateRequest(id=i["az1"]),
     ADMIN, FP, ""),
    ("agg-delete-unknown", ag, "DeleteAggregate", A.DeleteAggregateRequest(id=NOPE), ADMIN, NF,
     "aggregate"),
    ("az-unauthenticated", ag, "ListAvailabilityZones", A.ListAvailabilityZonesRequest(), (),
     CODE.UNAUTHENTICATED, ""),
]


@pytest.mark.parametrize("service, method, request_msg, metadata, code, field",
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
async def test_bad_requests(stack, ids, service, method, request_msg, metadata, code, field):
    request_msg = request_msg(ids) if callable(request_msg) else request_msg
    before = await stack.store.count("")
    revision = (await stack.store.list(keys.AGGREGATES, A.Aggregate))[1]
    call = getattr(getattr(stack.r, service), method)(request_msg, metadata=metadata)
    await expect(call, code, field)
    # A refused request leaves nothing behind: no new key, no change to ours.
    assert await stack.store.count("") == before
    for prefix in (keys.KEYPAIRS, keys.SECURITY_GROUPS, keys.SERVER_GROUPS, keys.AGGREGATES):
        items, _ = await stack.store.list(prefix, empty_pb2.Empty)
        assert all(v.mod_revision <= revision for _, v in items), prefix


# ---- key pairs ----------------------------------------------------------------------------

@needs_ssh_keygen
async def test_generated_keypair_private_key_is_returned_once(stack, tmp_path, capfd):
    kps = stack.r.keypairs
    me = user("kim", project())
    resp = await kps.CreateKeypair(K.CreateKeypairRequest(name="laptop key"), metadata=me)
    private, keypair = resp.private_key, resp.keypair
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (keypair.name, keypair.user_id, keypair.key_type) == ("laptop key", "kim", "ssh-ed25519")
    # The private key belongs to the public key we stored.
    path = tmp_path / "id"
    path.write_text(private)
    path.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], check=True,
                             capture_output=True, text=True).stdout.split()[:2]
    assert derived == keypair.public_key.split()[:2]
    md5 = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(path)], check=True,
                         capture_output=True, text=True).stdout.split()[1]
    assert md5 == "MD5:" + keypair.fingerprint
    assert keypair.fingerprint_sha256.startswith("SHA256:")

    # Never again: not in Get, not in List, not in etcd, not in any log.
    got = (await kps.GetKeypair(K.GetKeypairRequest(name="laptop key"), metadata=me)).keypair
    assert got == keypair
    listed = (await kps.ListKeypairs(K.ListKeypairsRequest(), metadata=me)).keypairs
    assert list(listed) == [keypair]
    body = "".join(private.splitlines()[1:-1])
    everything = await stack.store._kv.Range(etcd_rpc.RangeRequest(
        key=stack.store.key(""), range_end=prefix_end(stack.store.key(""))))
    assert everything.kvs and all(body[:40].encode() not in kv.value for kv in everything.kvs)
    out, err = capfd.readouterr()
    assert body[:40] not in out + err

    rsa = await kps.CreateKeypair(K.CreateKeypairRequest(
        name="rsa", algorithm=K.KEY_ALGORITHM_RSA_2048), metadata=me)
    assert rsa.keypair.key_type == "ssh-rsa" and rsa.private_key


async def test_keypairs_are_per_user_and_admins_can_reach_them(stack):
    kps = stack.r.keypairs
    tenant = project()
    ann, ben = user("ann", tenant), user("ben", tenant)
    imported = (await kps.ImportKeypair(K.ImportKeypairRequest(name="k1", public_key=ED25519),
                                        metadata=ann)).keypair
    assert imported.public_key == ED25519 and imported.key_type == "ssh-ed25519"
    assert imported.fingerprint.count(":") == 15
    # CreateKeypair with a public_key imports it and returns no private key.
    created = await kps.CreateKeypair(K.CreateKeypairRequest(name="k0", public_key=ED25519),
                                      metadata=ann)
    assert created.private_key == "" and created.keypair.fingerprint == imported.fingerprint
    # The same name for another user is another key pair.
    await kps.ImportKeypair(K.ImportKeypairRequest(name="k1", public_key=ED25519), metadata=ben)
    assert [k.name for k in (await kps.ListKeypairs(K.ListKeypairsRequest(), metadata=ann)).keypairs] \
        == ["k0", "k1"]
    assert [k.name for k in (await kps.ListKeypairs(K.ListKeypairsRequest(), metadata=ben)).keypairs] \
        == ["k1"]
    # A user id that would extend another's key prefix is refused outright.
    await expect(kps.ImportKeypair(K.ImportKeypairRequest(name="x", public_key=ED25519),
                                   metadata=user("ann/evil", tenant)), CODE.UNAUTHENTICATED, "")
    assert len((await kps.ListKeypairs(K.ListKeypairsRequest(), metadata=ann)).keypairs) == 2

    admin_view = await kps.ListKeypairs(K.ListKeypairsRequest(user_id="ann"), metadata=ADMIN)
    assert [k.name for k in admin_view.keypairs] == ["k0", "k1"]
    await kps.DeleteKeypair(K.DeleteKeypairRequest(name="k1", user_id="ann"), metadata=ADMIN)
    await expect(kps.GetKeypair(K.GetKeypairRequest(name="k1"), metadata=ann), CODE.NOT_FOUND,
                 "keypair")
    await kps.GetKeypair(K.GetKeypairRequest(name="k1"), metadata=ben)   # ben's is still there
    await kps.DeleteKeypair(K.DeleteKeypairRequest(name="k0"), metadata=ann)
    await expect(kps.DeleteKeypair(K.DeleteKeypairRequest(name="k0"), metadata=ann),
                 CODE.NOT_FOUND, "keypair")


async def test_concurrent_creates_of_one_name_make_one_keypair(stack):
    me = user("cy", project())
    calls = [stack.r.keypairs.ImportKeypair(K.ImportKeypairRequest(name="same", public_key=ED25519),
                                            metadata=me) for _ in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(r.code() == CODE.ALREADY_EXISTS for r in results if isinstance(r, Exception))


# ---- security groups ----------------------------------------------------------------------

async def test_default_group_race_makes_exactly_one(stack):
    tenant = project()
    me = user("dee", tenant)
    calls = [stack.r.security_groups.ListSecurityGroups(S.ListSecurityGroupsRequest(), metadata=me)
             for _ in range(10)]
    answers = await asyncio.gather(*calls)
    ids = {tuple(g.id for g in a.security_groups) for a in answers}
    assert ids == {(default_group_id(tenant),)}
    assert await stack.store.count(f"{keys.SECURITY_GROUPS}{tenant}/") == 1
    group = answers[0].security_groups[0]
    assert group.name == "default" and group.project_id == tenant
    assert sorted((r.direction, r.ethertype, r.remote_group_id) for r in group.rules) == [
        (R.DIRECTION_INGRESS, R.ETHER_TYPE_IPV4, group.id),
        (R.DIRECTION_INGRESS, R.ETHER_TYPE_IPV6, group.id),
        (R.DIRECTION_EGRESS, R.ETHER_TYPE_IPV4, ""),
        (R.DIRECTION_EGRESS, R.ETHER_TYPE_IPV6, "")]
    # Another first call (a Get, a Create) in another fresh project creates it too.
    other = project()
    got = await stack.r.security_groups.GetSecurityGroup(
        S.GetSecurityGroupRequest(id=default_group_id(other)), metadata=user("dee", other))
    assert got.security_group.name == "default"


async def test_concurrent_creates_of_one_name_make_one_group(stack):
    me = user("eve", project())
    calls = [stack.r.security_groups.CreateSecurityGroup(S.CreateSecurityGroupRequest(name="web"),
                                                         metadata=me) for _ in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(r.code() == CODE.ALREADY_EXISTS for r in results if isinstance(r, Exception))
    listed = await stack.r.security_groups.ListSecurityGroups(S.ListSecurityGroupsRequest(),
                                                              metadata=me)
    assert [g.name for g in listed.security_groups] == ["default", "web"]


async def test_security_group_lifecycle_rules_and_isolation(stack):
    sgs = stack.r.security_groups
    tenant = project()
    me = user("fay", tenant)
    web = (await sgs.CreateSecurityGroup(S.CreateSecurityGroupRequest(
        name="web", description="front"), metadata=me)).security_group
    assert web.project_id == tenant and len(web.rules) == 2   # egress IPv4 + IPv6
    ssh = (await sgs.CreateSecurityGroupRule(S.CreateSecurityGroupRuleRequest(
        security_group_id=web.id, direction=R.DIRECTION_INGRESS, protocol=R.PROTOCOL_TCP,
        port_range_min=22, remote_ip_prefix="10.1.2.3/24"), metadata=me)).rule
    assert (ssh.ethertype, ssh.port_range_min, ssh.port_range_max, ssh.remote_ip_prefix) == (
        R.ETHER_TYPE_IPV4, 22, 22, "10.1.2.0/24")
    v6 = (await sgs.CreateSecurityGroupRule(S.CreateSecurityGroupRuleRequest(
        security_group_id=web.id, direction=R.DIRECTION_INGRESS, protocol=R.PROTOCOL_ICMP,
        port_range_min=128, remote_ip_prefix="2001:db8::/32"), metadata=me)).rule
    assert v6.ethertype == R.ETHER_TYPE_IPV6 and not v6.HasField("port_range_max")
    await expect(sgs.CreateSecurityGroupRule(S.CreateSecurityGroupRuleRequest(
        security_group_id=web.id, direction=R.DIRECTION_INGRESS, protocol=R.PROTOCOL_TCP,
        port_range_min=22, port_range_max=22, remote_ip_prefix="10.1.2.0/24"), metadata=me),
        CODE.ALREADY_EXISTS)
    db = (await sgs.CreateSecurityGroup(S.CreateSecurityGroupRequest(name="db"),
                                        metadata=me)).security_group
    from_web = (await sgs.CreateSecurityGroupRule(S.CreateSecurityGroupRuleRequest(
        security_group_id=db.id, direction=R.DIRECTION_INGRESS, protocol=R.PROTOCOL_TCP,
        port_range_min=5432, remote_group_id=web.id), metadata=me)).rule
    got = (await sgs.GetSecurityGroup(S.GetSecurityGroupRequest(id=web.id), metadata=me)).security_group
    assert {r.id for r in got.rules} >= {ssh.id, v6.id}

    # Another project sees none of it and cannot use it as a remote group.
    them = user("fay", project())
    await expect(sgs.GetSecurityGroup(S.GetSecurityGroupRequest(id=web.id), metadata=them),
                 CODE.NOT_FOUND, "security_group")
    await expect(sgs.DeleteSecurityGroupRule(S.DeleteSecurityGroupRuleRequest(id=ssh.id),
                                             metadata=them), CODE.NOT_FOUND, "security_group_rule")
    theirs = (await sgs.ListSecurityGroups(S.ListSecurityGroupsRequest(), metadata=them)).security_groups
    assert [g.name for g in theirs] == ["default"]
    await expect(sgs.CreateSecurityGroupRule(S.CreateSecurityGroupRuleRequest(
        security_group_id=theirs[0].id, direction=R.DIRECTION_INGRESS, remote_group_id=web.id),
        metadata=them), CODE.NOT_FOUND, "security_group")

    # Update: rename and describe; the default group takes a description.
    renamed = (await sgs.UpdateSecurityGroup(S.UpdateSecurityGroupRequest(
        id=web.id, name="frontend"), metadata=me)).security_group
    assert (renamed.name, renamed.description) == ("frontend", "front")
    default = (await sgs.UpdateSecurityGroup(S.UpdateSecurityGroupRequest(
        id=default_group_id(tenant), description="mine"), metadata=me)).security_group
    assert (default.name, default.description) == ("default", "mine")

    # Rules go; deleting a group drops the rules that name it as remote.
    await sgs.DeleteSecurityGroupRule(S.DeleteSecurityGroupRuleRequest(id=ssh.id), metadata=me)
    await sgs.DeleteSecurityGroup(S.DeleteSecurityGroupRequest(id=web.id), metadata=me)
    await expect(sgs.GetSecurityGroup(S.GetSecurityGroupRequest(id=web.id), metadata=me),
                 CODE.NOT_FOUND, "security_group")
    db_now = (await sgs.GetSecurityGroup(S.GetSecurityGroupRequest(id=db.id), metadata=me)).security_group
    assert from_web.id not in {r.id for r in db_now.rules}
    names = [g.name for g in (await sgs.ListSecurityGroups(S.ListSecurityGroupsRequest(),
                                                           metadata=me)).security_groups]
    assert names == ["db", "default"]

    # The create path's helper: names (or ids) to groups, de-duplicated, "default" by default.
    resolved = await security_groups.resolve_security_groups(stack.store, tenant,
                                                             ["db", "default", "db", db.id])
    assert [g.name for g in resolved] == ["db", "default"]
    assert [g.name for g in await security_groups.resolve_security_groups(
        stack.store, project(), [])] == ["default"]
    with pytest.raises(errors.NotFound):
        await security_groups.resolve_security_groups(stack.store, tenant, ["frontend"])


async def test_security_group_in_use_cannot_be_deleted_or_renamed(stack):
    sgs = stack.r.security_groups
    me = user("gil", project())
    web = (await sgs.CreateSecurityGroup(S.CreateSecurityGroupRequest(name="web"),
                                         metadata=me)).security_group
    server = (await stack.api.CreateServer(C.CreateServerRequest(
        name="s", image_ref="cirros", flavor_ref="m1.tiny", security_groups=["web"]),
        metadata=me)).servers[0]
    assert list(server.security_groups) == ["web"]
    await expect(sgs.DeleteSecurityGroup(S.DeleteSecurityGroupRequest(id=web.id), metadata=me),
                 CODE.FAILED_PRECONDITION)
    await expect(sgs.UpdateSecurityGroup(S.UpdateSecurityGroupRequest(id=web.id, name="w2"),
                                         metadata=me), CODE.FAILED_PRECONDITION)
    await stack.wait_settled(server.id)
    await stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    await stack.wait_for(server.id, lambda s: s is None)
    await sgs.DeleteSecurityGroup(S.DeleteSecurityGroupRequest(id=web.id), metadata=me)


# ---- server groups ----------------------------------------------------------------------

async def test_server_groups_crud_and_isolation(stack):
    svg = stack.r.server_groups
    tenant = project()
    me = user("hal", tenant)
    made = {}
    for policy in (SG.POLICY_AFFINITY, SG.POLICY_ANTI_AFFINITY, SG.POLICY_SOFT_AFFINITY,
                   SG.POLICY_SOFT_ANTI_AFFINITY):
        group = (await svg.CreateServerGroup(G.CreateServerGroupRequest(
            name=f"g{policy}", policy=policy), metadata=me)).server_group
        assert (group.policy, group.project_id, group.user_id, list(group.members)) == (
            policy, tenant, "hal", [])
        made[policy] = group
    spread = (await svg.CreateServerGroup(G.CreateServerGroupRequest(
        name="spread", policy=SG.POLICY_ANTI_AFFINITY,
        rules=G.ServerGroupRules(max_server_per_host=3)), metadata=me)).server_group
    assert spread.rules.max_server_per_host == 3
    listed = (await svg.ListServerGroups(G.ListServerGroupsRequest(), metadata=me)).server_groups
    assert [g.name for g in listed] == ["g1", "g2", "g3", "g4", "spread"]

    them = user("hal", project())
    assert not (await svg.ListServerGroups(G.ListServerGroupsRequest(), metadata=them)).server_groups
    await expect(svg.GetServerGroup(G.GetServerGroupRequest(id=spread.id), metadata=them),
                 CODE.NOT_FOUND, "server_group")
    await expect(svg.DeleteServerGroup(G.DeleteServerGroupRequest(id=spread.id), metadata=them),
                 CODE.NOT_FOUND, "server_group")
    everyone = (await svg.ListServerGroups(G.ListServerGroupsRequest(all_projects=True),
                                           metadata=ADMIN)).server_groups
    assert {g.id for g in listed} <= {g.id for g in everyone}

    await svg.DeleteServerGroup(G.DeleteServerGroupRequest(id=spread.id), metadata=me)
    await expect(svg.GetServerGroup(G.GetServerGroupRequest(id=spread.id), metadata=me),
                 CODE.NOT_FOUND, "server_group")


async def test_add_members_helper_joins_the_callers_transaction(stack):
    svg, store = stack.r.server_groups, stack.store
    tenant = project()
    me = user("ida", tenant)
    group = (await svg.CreateServerGroup(G.CreateServerGroupRequest(
        name="anti", policy=SG.POLICY_ANTI_AFFINITY), metadata=me)).server_group
    read = await servergroups.get_server_group(store, tenant, group.id)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    marker = "test-markers/" + a
    compares, ops = servergroups.add_members(store, read, [a, b, a])
    resp = await store.txn(compares, [*ops, store.put(marker, G.ServerGroup(id=a))])
    assert resp.succeeded and await store.get_raw(marker)
    got = (await svg.GetServerGroup(G.GetServerGroupRequest(id=group.id), metadata=me)).server_group
    assert list(got.members) == [a, b]
    # A second create acting on the stale read loses: nothing of it is written.
    compares, ops = servergroups.add_members(store, read, [str(uuid.uuid4())])
    resp = await store.txn(compares, [*ops, store.delete(marker)])
    assert not resp.succeeded and await store.get_raw(marker)
    fresh = await servergroups.get_server_group(store, tenant, group.id)
    compares, ops = servergroups.remove_members(store, fresh, [a])
    assert (await store.txn(compares, ops)).succeeded
    assert list((await servergroups.get_server_group(store, tenant, group.id)).msg.members) == [b]
    with pytest.raises(errors.NotFound):      # another project's group
        await servergroups.get_server_group(store, "other", group.id)
    # Deleting a group with members is allowed; the members lose it.
    await svg.DeleteServerGroup(G.DeleteServerGroupRequest(id=group.id), metadata=me)
    compares, ops = servergroups.add_members(store, fresh, [a])
    assert not (await store.txn(compares, ops)).succeeded   # a create racing the delete loses
    assert await store.get_raw(keys.server_group(tenant, group.id)) is None
    await store.txn([], [store.delete(marker)])


# ---- aggregates and availability zones -------------------------------------------------------

@pytest.fixture
async def own_stack(etcd, tmp_path, qcow2_image):
    """Aggregates are global: these tests get a stack of their own."""
    s = await _start(etcd, str(tmp_path), qcow2_image)
    yield s
    await s.__aexit__(None, None, None)


async def test_availability_zones_from_aggregates(own_stack):
    aggs, store = own_stack.r.aggregates, own_stack.store
    h1, h2 = sorted(a.host for a in own_stack.agents.agents)
    me = user("jo", project())

    def zones(resp):
        return [(z.name, z.available, list(z.hosts)) for z in resp.zones]

    empty = await aggs.ListAvailabilityZones(A.ListAvailabilityZonesRequest(), metadata=me)
    assert zones(empty) == [("nova", True, [])]          # users see no hosts

    east = (await aggs.CreateAggregate(A.CreateAggregateRequest(
        name="rack-1", availability_zone="east", metadata={"ssd": "true"}),
        metadata=ADMIN)).aggregate
    east = (await aggs.AddAggregateHost(A.AddAggregateHostRequest(id=east.id, host=h1),
                                        metadata=ADMIN)).aggregate
    assert list(east.hosts) == [h1] and east.metadata == {"ssd": "true"}
    assert zones(await aggs.ListAvailabilityZones(A.ListAvailabilityZonesRequest(), metadata=me)) \
        == [("east", True, []), ("nova", True, [])]
    assert zones(await aggs.ListAvailabilityZones(A.ListAvailabilityZonesRequest(),
                                                  metadata=ADMIN)) \
        == [("east", True, [h1]), ("nova", True, [h2])]
    assert await aggregates.zones(store) == {"east": {h1}, "nova": {h2}}

    # A host is in one zone at most, but in any number of plain aggregates.
    west = (await aggs.CreateAggregate(A.CreateAggregateRequest(name="rack-2",
                                                                availability_zone="west"),
                                       metadata=ADMIN)).aggregate
    await expect(aggs.AddAggregateHost(A.AddAggregateHostRequest(id=west.id, host=h1),
                                       metadata=ADMIN), CODE.FAILED_PRECONDITION)
    gpu = (await aggs.CreateAggregate(A.CreateAggregateRequest(name="gpu"),
                                      metadata=ADMIN)).aggregate
    await aggs.AddAggregateHost(A.AddAggregateHostRequest(id=gpu.id, host=h1), metadata=ADMIN)
    await aggs.AddAggregateHost(A.AddAggregateHostRequest(id=gpu.id, host=h2), metadata=ADMIN)
    # ...and a plain aggregate cannot take a zone that splits its hosts.
    await expect(aggs.UpdateAggregate(A.UpdateAggregateRequest(id=gpu.id, availability_zone="west"),
                                      metadata=ADMIN), CODE.FAILED_PRECONDITION)
    await aggs.RemoveAggregateHost(A.RemoveAggregateHostRequest(id=gpu.id, host=h2),
                                   metadata=ADMIN)
    gpu = (await aggs.UpdateAggregate(A.UpdateAggregateRequest(
        id=gpu.id, availability_zone="east", name="gpus", metadata={"a": "1", "b": "2"}),
        metadata=ADMIN)).aggregate
    assert (gpu.name, gpu.availability_zone, dict(gpu.metadata)) == ("gpus", "east",
                                                                      {"a": "1", "b": "2"})
    gpu = (await aggs.UpdateAggregate(A.UpdateAggregateRequest(id=gpu.id, remove_metadata=["a"]),
                                      metadata=ADMIN)).aggregate
    assert dict(gpu.metadata) == {"b": "2"} and gpu.availability_zone == "east"
    listed = (await aggs.ListAggregates(A.ListAggregatesRequest(), metadata=ADMIN)).aggregates
    assert [a.name for a in listed] == ["gpus", "rack-1", "rack-2"]

    # Hosts out, aggregates gone: back to the default zone alone.
    for agg in (east, gpu):
        await aggs.RemoveAggregateHost(A.RemoveAggregateHostRequest(id=agg.id, host=h1),
                                       metadata=ADMIN)
    for agg in (east, west, gpu):
        await aggs.DeleteAggregate(A.DeleteAggregateRequest(id=agg.id), metadata=ADMIN)
    assert zones(await aggs.ListAvailabilityZones(A.ListAvailabilityZonesRequest(),
                                                  metadata=ADMIN)) == [("nova", True, [h1, h2])]


async def test_concurrent_zone_assignments_never_split_a_host(own_stack):
    """Two admins put one host into two zones at once: one wins."""
    aggs = own_stack.r.aggregates
    host = own_stack.agents.agents[0].host
    made = [(await aggs.CreateAggregate(A.CreateAggregateRequest(name=f"z{i}",
                                                                 availability_zone=f"z{i}"),
                                        metadata=ADMIN)).aggregate for i in range(6)]
    calls = [aggs.AddAggregateHost(A.AddAggregateHostRequest(id=a.id, host=host), metadata=ADMIN)
             for a in made]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(r.code() == CODE.FAILED_PRECONDITION for r in results if isinstance(r, Exception))
    zones = await aggregates.zones(own_stack.store)
    assert sum(host in hosts for hosts in zones.values()) == 1


async def test_zone_of_hosts_running_servers_cannot_change(own_stack):
    aggs = own_stack.r.aggregates
    me = user("kai", project())
    server = (await own_stack.api.CreateServer(C.CreateServerRequest(
        name="s", image_ref="cirros", flavor_ref="m1.tiny"), metadata=me)).servers[0]
    server = await own_stack.wait_settled(server.id)
    assert server.vm_state == C.VM_STATE_ACTIVE, server.fault
    idle = next(a.host for a in own_stack.agents.agents if a.host != server.host)
    busy_agg, idle_agg = [(await aggs.CreateAggregate(A.CreateAggregateRequest(name=name),
                                                      metadata=ADMIN)).aggregate
                          for name in ("busy", "idle")]
    await aggs.AddAggregateHost(A.AddAggregateHostRequest(id=busy_agg.id, host=server.host),
                                metadata=ADMIN)
    await aggs.AddAggregateHost(A.AddAggregateHostRequest(id=idle_agg.id, host=idle),
                                metadata=ADMIN)
    err = await expect(aggs.UpdateAggregate(A.UpdateAggregateRequest(
        id=busy_agg.id, availability_zone="north"), metadata=ADMIN), CODE.FAILED_PRECONDITION)
    assert "servers run on" in err.details()
    idle_agg = (await aggs.UpdateAggregate(A.UpdateAggregateRequest(
        id=idle_agg.id, availability_zone="north"), metadata=ADMIN)).aggregate
    assert idle_agg.availability_zone == "north"
    await own_stack.api.DeleteServer(C.DeleteServerRequest(id=server.id), metadata=me)
    await own_stack.wait_for(server.id, lambda s: s is None)
    busy_agg = (await aggs.UpdateAggregate(A.UpdateAggregateRequest(
        id=busy_agg.id, availability_zone="south"), metadata=ADMIN)).aggregate
    assert await aggregates.zones(own_stack.store) == {"north": {idle}, "south": {server.host}}


async def test_grpcurl_sees_and_drives_the_services(stack):
    """Reflection serves the four services; JSON names work (enums, optionals)."""
    grpcurl = os.path.join(os.path.dirname(sys.executable), "grpcurl")
    api = stack.cfg.api_address
    tenant = project()

    async def run(*args, data=None):
        argv = [grpcurl, "-plaintext", "-H", f"authorization: Bearer lee:{tenant}"]
        if data is not None:
            argv += ["-d", json.dumps(data)]
        proc = await asyncio.create_subprocess_exec(*argv, api, *args,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    listed = set((await run("list")).split())
    assert {f"nimbus.compute.v1.{name}" for name in (
        "KeypairService", "SecurityGroupService", "ServerGroupService", "AggregateService")} <= listed
    kp = json.loads(await run("nimbus.compute.v1.KeypairService/ImportKeypair",
                              data={"name": "k", "public_key": ED25519}))
    assert kp["keypair"]["fingerprint"]
    groups = json.loads(await run("nimbus.compute.v1.SecurityGroupService/ListSecurityGroups",
                                  data={}))
    default = groups["security_groups"][0]
    rule = json.loads(await run("nimbus.compute.v1.SecurityGroupService/CreateSecurityGroupRule",
                                data={"security_group_id": default["id"],
                                      "direction": "DIRECTION_INGRESS", "protocol": "PROTOCOL_TCP",
                                      "port_range_min": 22, "port_range_max": 22}))
    assert rule["rule"]["port_range_min"] == 22 and rule["rule"]["ethertype"] == "ETHER_TYPE_IPV4"
    group = json.loads(await run("nimbus.compute.v1.ServerGroupService/CreateServerGroup",
                                 data={"name": "g", "policy": "POLICY_SOFT_ANTI_AFFINITY"}))
    assert group["server_group"]["policy"] == "POLICY_SOFT_ANTI_AFFINITY"
    zones = json.loads(await run("nimbus.compute.v1.AggregateService/ListAvailabilityZones",
                                 data={}))
    assert "nova" in [z["name"] for z in zones["zones"]]


# ---- quotas: key_pairs and server_groups ---------------------------------------------------

async def test_keypair_and_server_group_quotas(stack):
    from nimbus.compute.v1 import quotas_pb2 as Q
    from nimbus.compute.v1 import quotas_pb2_grpc
    quotas = quotas_pb2_grpc.QuotaServiceStub(stack.channel)
    tenant = project()
    me = user("lou", tenant)
    await quotas.UpdateQuotas(Q.UpdateQuotasRequest(
        project_id=tenant, quota_set=Q.QuotaSet(key_pairs=2, server_groups=1)), metadata=ADMIN)

    async def in_use():
        usage = (await quotas.GetQuotaUsage(Q.GetQuotaUsageRequest(), metadata=me)).usage
        return usage.key_pairs.in_use, usage.server_groups.in_use

    kps, svg = stack.r.keypairs, stack.r.server_groups
    for name in ("a", "b"):
        kp = (await kps.ImportKeypair(K.ImportKeypairRequest(name=name, public_key=ED25519),
                                      metadata=me)).keypair
        assert kp.project_id == tenant
    await expect(kps.ImportKeypair(K.ImportKeypairRequest(name="c", public_key=ED25519),
                                   metadata=me), CODE.RESOURCE_EXHAUSTED)
    await expect(kps.CreateKeypair(K.CreateKeypairRequest(name="c"), metadata=me),
                 CODE.RESOURCE_EXHAUSTED)
    group = (await svg.CreateServerGroup(G.CreateServerGroupRequest(
        name="g", policy=SG.POLICY_AFFINITY), metadata=me)).server_group
    await expect(svg.CreateServerGroup(G.CreateServerGroupRequest(
        name="h", policy=SG.POLICY_AFFINITY), metadata=me), CODE.RESOURCE_EXHAUSTED)
    assert await in_use() == (2, 1)
    assert await stack.store.get_raw(keys.keypair("lou", "c")) is None

    # Deletes release, exactly once, also when repeated or raced.
    deletes = [kps.DeleteKeypair(K.DeleteKeypairRequest(name="a"), metadata=me) for _ in range(5)]
    results = await asyncio.gather(*deletes, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    deletes = [svg.DeleteServerGroup(G.DeleteServerGroupRequest(id=group.id), metadata=me)
               for _ in range(5)]
    results = await asyncio.gather(*deletes, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert await in_use() == (1, 0)
    await kps.ImportKeypair(K.ImportKeypairRequest(name="c", public_key=ED25519), metadata=me)
    assert await in_use() == (2, 0)
