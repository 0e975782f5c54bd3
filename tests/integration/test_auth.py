"""Users authenticate with OIDC/JWT access tokens from a test issuer (keys
made here, JWKS served over HTTP on 127.0.0.1); roles decide what they may
do (nimbus.policy); agents act only for their own host."""

import os
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization

from credentials import AUDIENCE, ISSUER, Issuer, bearer
from nimbus import config
from nimbus.conductor.v1 import conductor_pb2 as CD
from nimbus.conductor.v1 import conductor_pb2_grpc
from nimbus.rpc import auth, tokens
from nimbus.rpc.server import channel
from nimbus.state.v1 import records_pb2
from stack import C, Stack, expect


@pytest.fixture(scope="module")
def issuer():
    i = Issuer()
    yield i
    i.close()


@pytest.fixture(scope="module")
async def jwt_stack(etcd, tmp_path_factory, issuer):
    """The compute API in a process of its own, logging at debug (the test
    reads its log), with JWT auth against the issuer."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIMBUS_LOG_LEVEL", "debug")
        stack = Stack(etcd.endpoint, str(tmp_path_factory.mktemp("jwt")), hosts=1,
                      subprocesses=("compute",), auth="jwt", jwt_issuer=ISSUER,
                      jwt_audience=AUDIENCE, jwks_url=issuer.url, jwks_min_refresh=0.0)
        async with stack as s:
            yield s


def _unauthenticated_cases(issuer: Issuer) -> list[tuple[str, str, str]]:
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = issuer.keys["rsa-1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    issuer.add_key("rsa-unpublished", publish=False)
    return [
        ("expired", issuer.token(exp=now - 120, nbf=now - 600, iat=now - 600), "expired"),
        ("not yet valid", issuer.token(nbf=now + 600), "not valid yet"),
        ("wrong audience", issuer.token(aud="someone-else"), "audience"),
        ("wrong issuer", issuer.token(iss="https://evil.test"), "issuer"),
        ("bad signature", issuer.token(key=stranger), "signature"),
        ("alg none", jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
                                 "project_id": "demo", "roles": ["admin"], "exp": now + 300},
                                None, algorithm="none", headers={"kid": "rsa-1"}), "algorithm"),
        # The key-confusion attack: HMAC "signed" with the published RSA key.
        ("HS256 with the public key", _hs256(public_pem, now), "algorithm"),
        ("unknown kid", issuer.token(kid="rsa-unpublished"), "unknown key id"),
        # An algorithm that does not fit the named key (PyJWT would raise TypeError).
        ("RS256 on an EC key", issuer.token(kid="ec-1", key=issuer.keys["rsa-1"], alg="RS256"),
         "does not fit its key"),
        ("ES256 on an RSA key", issuer.token(kid="rsa-1", key=issuer.keys["ec-1"], alg="ES256"),
         "does not fit its key"),
        ("roles not a list", issuer.token(roles={"admin": True}), "list of roles"),
        ("user with a slash", issuer.token(user="a/b"), "'sub' must be an id"),
        ("no project", issuer.token(project_id=None), "project_id"),
        ("not a JWT", "definitely-not-a-jwt", "not a JWT"),
        ("noauth token", "alice:demo", "not a JWT"),
    ]


def _hs256(secret: bytes, now: int) -> str:
    # PyJWT itself refuses a PEM as an HMAC secret: build the token by hand.
    import base64, hashlib, hmac, json
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "project_id": "demo",
                           "roles": ["admin"], "exp": now + 300}).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


async def test_tokens_are_verified_and_never_logged(jwt_stack, issuer):
    api = jwt_stack.api
    for kid in ("rsa-1", "ec-1"):   # RS256 and ES256
        resp = await api.ListServers(C.ListServersRequest(), metadata=bearer(issuer.token(kid=kid)))
        assert list(resp.servers) == []
    cases = _unauthenticated_cases(issuer)
    for name, token, reason in cases:
        err = await expect(api.ListServers(C.ListServersRequest(), metadata=bearer(token)),
                           grpc.StatusCode.UNAUTHENTICATED)
        assert reason in err.details(), (name, err.details())
        assert token not in err.details()
    with open(os.path.join(jwt_stack.cfg.state_dir, "compute.log")) as f:
        logged = f.read()
    assert "UNAUTHENTICATED" in logged   # the refusals were logged (at info)...
    for name, token, _ in cases:
        for part in token.split("."):     # ...without any token or piece of one
            if len(part) > 12:
                assert part not in logged, f"{name}: token in the log"


async def test_rotated_key_is_fetched_on_first_sight(jwt_stack, issuer):
    issuer.add_key("rsa-2")   # the issuer rotates: published after the API loaded its keys
    before = issuer.fetches
    resp = await jwt_stack.api.ListServers(C.ListServersRequest(),
                                           metadata=bearer(issuer.token(kid="rsa-2")))
    assert list(resp.servers) == []
    assert issuer.fetches == before + 1


async def test_unknown_kids_fetch_at_most_once_per_interval(issuer):
    keys = tokens.KeySet(url=issuer.url, min_refresh=3600)
    await keys.refresh()
    before = issuer.fetches
    verifier = tokens.JwtVerifier(keys, ISSUER, AUDIENCE)
    for i in range(5):
        with pytest.raises(tokens.UnknownKey):
            verifier.verify(issuer.token(kid=f"made-up-{i}", key=issuer.keys["rsa-1"]))
        await keys.refresh()
    assert issuer.fetches == before   # a flood of made-up kids fetched nothing


async def test_jwks_file(tmp_path, issuer):
    import json
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    keys = tokens.KeySet(path=str(path), min_refresh=0)
    keys.load()
    who = tokens.JwtVerifier(keys, ISSUER, AUDIENCE, roles_claim="realm_access.roles").verify(
        issuer.token(user="bob", project="p1", roles=None, realm_access={"roles": ["reader"]}))
    assert (who.user_id, who.project_id, who.roles) == ("bob", "p1", frozenset({"reader"}))


ROLE_CASES = [
    # (roles in the token, call, expected code)
    (["reader"], "list", grpc.StatusCode.OK),
    (["reader"], "create_keypair", grpc.StatusCode.PERMISSION_DENIED),
    (["reader"], "delete_server", grpc.StatusCode.PERMISSION_DENIED),
    (["member"], "create_keypair", grpc.StatusCode.OK),
    (["member"], "create_flavor", grpc.StatusCode.PERMISSION_DENIED),
    (["member"], "list_hypervisors", grpc.StatusCode.PERMISSION_DENIED),
    (["admin"], "create_flavor", grpc.StatusCode.OK),
    (["admin"], "list_hypervisors", grpc.StatusCode.OK),
    ([], "list", grpc.StatusCode.PERMISSION_DENIED),
    (["service"], "list", grpc.StatusCode.PERMISSION_DENIED),   # a token cannot claim it
]


async def test_roles(jwt_stack, issuer):
    from nimbus.compute.v1 import hypervisors_pb2 as H, hypervisors_pb2_grpc
    from nimbus.compute.v1 import keypairs_pb2 as K, keypairs_pb2_grpc
    ch = jwt_stack.channel
    calls = {
        "list": lambda md: jwt_stack.api.ListServers(C.ListServersRequest(), metadata=md),
        "delete_server": lambda md: jwt_stack.api.DeleteServer(
            C.DeleteServerRequest(id="00000000-0000-0000-0000-000000000000"), metadata=md),
        "create_keypair": lambda md: keypairs_pb2_grpc.KeypairServiceStub(ch).CreateKeypair(
            K.CreateKeypairRequest(name=f"k{time.monotonic_ns()}"), metadata=md),
        "create_flavor": lambda md: jwt_stack.api.CreateFlavor(C.CreateFlavorRequest(
            flavor=C.Flavor(name=f"f{time.monotonic_ns()}", vcpus=1, ram_mb=64, disk_gb=1)),
            metadata=md),
        "list_hypervisors": lambda md: hypervisors_pb2_grpc.HypervisorServiceStub(ch)
        .ListHypervisors(H.ListHypervisorsRequest(), metadata=md),
    }
    for roles, call, code in ROLE_CASES:
        md = bearer(issuer.token(user="carol", project="roles", roles=roles))
        if code == grpc.StatusCode.OK:
            await calls[call](md)
        else:
            err = await expect(calls[call](md), code)
            assert "role" in err.details(), (roles, call, err.details())


@pytest.mark.parametrize("listen,forced,refused", [
    ("0.0.0.0:8774", False, True),
    ("10.1.2.3:8774", False, True),
    ("0.0.0.0:8774", True, False),
    ("127.0.0.1:8774", False, False),
    ("[::1]:8774", False, False),
    ("localhost:8774", False, False),
])
def test_noauth_only_on_loopback_unless_forced(listen, forced, refused):
    cfg = config.Config(noauth=True, service_token="s", allow_noauth_anywhere=forced)
    problem = auth.exposure_problem(cfg, listen)
    assert (problem is not None) is refused
    if refused:
        assert "allow-noauth-anywhere" in problem and listen in problem


def test_a_process_refuses_to_start_and_says_why(tmp_path):
    import subprocess, sys
    env = dict(os.environ, NIMBUS_NOAUTH="true", NIMBUS_SERVICE_TOKEN="x",
               NIMBUS_LISTEN="0.0.0.0:0", NIMBUS_ETCD_ENDPOINT="127.0.0.1:1")
    out = subprocess.run([sys.executable, "-m", "nimbus.services.compute"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "refusing noauth on 0.0.0.0:0" in out.stderr


# ---- agents: one host's credential acts only for that host ----------------

async def test_a_host_token_cannot_act_for_another_host(jwt_stack):
    stack = jwt_stack
    host = stack.agents.agents[0].host
    victim = "sim-victim"
    token = auth.agent_token(stack.cfg.service_token, host)
    md = bearer(token)
    async with channel(stack.cfg.conductor_address) as ch:
        conductor = conductor_pb2_grpc.ConductorServiceStub(ch)
        refused = [
            conductor.ReportNode(CD.ReportNodeRequest(node=records_pb2.NodeRecord(host=victim)),
                                 metadata=md),
            conductor.UpdateInstance(CD.UpdateInstanceRequest(
                host=victim, server=C.Server(id="x")), metadata=md),
            conductor.FinishDeleteInstance(CD.FinishDeleteInstanceRequest(
                host=victim, instance_id="x"), metadata=md),
            conductor.AllocateNetworks(CD.AllocateNetworksRequest(
                host=victim, instance_id="x"), metadata=md),
            # Not an agent's at all: the scheduler-side and API-side calls.
            conductor.GetConsoleOutput(CD.GetConsoleOutputRequest(instance_id="x"), metadata=md),
        ]
        for call in refused:
            err = await expect(call, grpc.StatusCode.PERMISSION_DENIED)
            assert host in err.details() or "role" in err.details()
        stream = conductor.StreamAssignments(CD.StreamAssignmentsRequest(host=victim), metadata=md)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stream:
                pass
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Its own host: the same calls pass the gate (and meet the conductor's own checks).
        own = conductor.StreamAssignments(CD.StreamAssignmentsRequest(host=host), metadata=md)
        first = await own.read()
        assert first.type in (CD.StreamAssignmentsResponse.EVENT_TYPE_SYNCED,
                              CD.StreamAssignmentsResponse.EVENT_TYPE_UPSERT)
        own.cancel()
        # A forged token for the victim (wrong MAC) is not a credential.
        forged = token.replace(host, victim, 1)
        await expect(conductor.StreamAssignments(CD.StreamAssignmentsRequest(host=victim),
                                                 metadata=bearer(forged)).read(),
                     grpc.StatusCode.UNAUTHENTICATED)
    # Nor can a host token reach the scheduler or user APIs.
    await expect(stack.api.ListServers(C.ListServersRequest(), metadata=md),
                 grpc.StatusCode.PERMISSION_DENIED)


async def test_a_host_cannot_keep_another_hosts_lease_alive(jwt_stack):
    """A compromised agent that learnt another host's lease id cannot refresh
    it through its own ReportNode: the conductor grants it a lease of its own."""
    stack = jwt_stack
    mine, other = "sim-lease-a", "sim-lease-b"
    md = {h: bearer(auth.agent_token(stack.cfg.service_token, h)) for h in (mine, other)}
    async with channel(stack.cfg.conductor_address) as ch:
        conductor = conductor_pb2_grpc.ConductorServiceStub(ch)

        async def report(host, lease_id=0):
            return (await conductor.ReportNode(CD.ReportNodeRequest(
                node=records_pb2.NodeRecord(host=host), lease_id=lease_id),
                metadata=md[host])).lease_id
        theirs = await report(other)
        assert await report(other, theirs) == theirs          # its own: refreshed
        own = await report(mine, theirs)
        assert own and own != theirs                          # not theirs to refresh
        assert await report(mine, own) == own


async def test_database_service_with_jwt(jwt_stack, issuer):
    """DatabaseService takes the same tokens and table (and still its guests')."""
    from nimbus.database.v1 import database_pb2 as D, database_pb2_grpc
    from nimbus.database.v1 import datastores_pb2 as S, datastores_pb2_grpc
    from nimbus.etcd import free_port
    from nimbus.services.database.main import DatabaseProcess
    cfg = config.Config(**vars(jwt_stack.cfg))
    cfg.listen = f"127.0.0.1:{free_port()}"
    cfg.guest_launch = "none"
    db = await DatabaseProcess(cfg).start()
    try:
        async with channel(cfg.listen) as ch:
            dbs = database_pb2_grpc.DatabaseServiceStub(ch)
            stores = datastores_pb2_grpc.DatastoreServiceStub(ch)
            reader = bearer(issuer.token(roles=["reader"]))
            member = bearer(issuer.token(roles=["member"]))
            assert list((await dbs.ListInstances(D.ListInstancesRequest(),
                                                 metadata=reader)).instances) == []
            await expect(dbs.CreateInstance(D.CreateInstanceRequest(name="x"), metadata=reader),
                         grpc.StatusCode.PERMISSION_DENIED)
            await expect(stores.CreateDatastore(S.CreateDatastoreRequest(), metadata=member),
                         grpc.StatusCode.PERMISSION_DENIED)
            await expect(dbs.ListInstances(D.ListInstancesRequest(),
                                           metadata=bearer(issuer.token(aud="other"))),
                         grpc.StatusCode.UNAUTHENTICATED)
            await expect(dbs.ListInstances(D.ListInstancesRequest(),
                                           metadata=bearer("guest.nobody.secret")),
                         grpc.StatusCode.UNAUTHENTICATED)
    finally:
        await db.stop()


async def test_internal_ports_open_reflection_and_health_only(jwt_stack, issuer):
    """Decided (issue 13): reflection and health answer without a token on
    the conductor and scheduler; no service RPC does, nor for a user's token,
    an admin's included."""
    import asyncio, json, sys
    grpcurl = os.path.join(os.path.dirname(sys.executable), "grpcurl")

    async def run(*argv):
        proc = await asyncio.create_subprocess_exec(grpcurl, "-plaintext", *argv,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode, out.decode(), err.decode()
    admin = f"authorization: Bearer {issuer.token(roles=['admin'])}"
    for address, method in ((jwt_stack.cfg.conductor_address,
                             "nimbus.conductor.v1.ConductorService/GetConsoleOutput"),
                            (jwt_stack.cfg.scheduler_address,
                             "nimbus.scheduler.v1.SchedulerService/SelectDestinations")):
        rc, out, err = await run(address, "list")
        assert rc == 0 and "grpc.health.v1.Health" in out, err
        rc, out, _ = await run(address, "grpc.health.v1.Health/Check")
        assert rc == 0 and json.loads(out)["status"] == "SERVING"
        for headers in ((), ("-H", admin)):
            rc, out, err = await run(*headers, "-d", "{}", address, method)
            assert rc != 0 and "Unauthenticated" in err, err
