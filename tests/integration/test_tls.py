"""The stack with TLS on every listener: grpcurl verifies with -cacert, a
plaintext client or one that does not trust the CA is refused, a rotated
certificate is served without a restart, and with mTLS a client without a
certificate cannot connect."""

import asyncio
import json
import os
import socket
import ssl
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from credentials import CA
from nimbus import config
from nimbus.conductor.v1 import conductor_pb2 as CD
from nimbus.conductor.v1 import conductor_pb2_grpc
from nimbus.services.agent import main as agent_main
from nimbus.services.agent.main import AgentProcess
from nimbus.rpc import tls
from nimbus.rpc.server import channel
from stack import C, Stack, user

GRPCURL = os.path.join(os.path.dirname(sys.executable), "grpcurl")


async def grpcurl(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(GRPCURL, *argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


def served_serial(address: str, ca_path: str) -> int:
    """The serial of the certificate a new connection is served (verified)."""
    from cryptography import x509
    host, port = address.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca_path)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as conn:
        return x509.load_der_x509_certificate(conn.getpeercert(binary_form=True)).serial_number


async def health(ch) -> int:
    resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return resp.status


@pytest.fixture(scope="module")
async def tls_stack(etcd, tmp_path_factory, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path_factory.mktemp("tls")), hosts=1,
                     tls_on=True) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        yield s


async def test_a_boot_over_tls_and_grpcurl_with_cacert(tls_stack):
    s = tls_stack
    # Every internal link (agent -> conductor and API, API -> conductor,
    # conductor -> scheduler) is TLS: a boot goes all the way.
    server = (await s.api.CreateServer(C.CreateServerRequest(
        name="tls-1", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
    assert (await s.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
    for address in (s.cfg.api_address, s.cfg.conductor_address, s.cfg.scheduler_address):
        rc, out, err = await grpcurl("-cacert", s.cfg.tls_ca, address, "grpc.health.v1.Health/Check")
        assert rc == 0 and json.loads(out)["status"] == "SERVING", err
    rc, out, err = await grpcurl("-cacert", s.cfg.tls_ca, "-H", "authorization: Bearer alice:demo",
                                 "-d", json.dumps({"id": server.id}), s.cfg.api_address,
                                 "nimbus.compute.v1.ComputeService/GetServer")
    assert rc == 0, err
    assert json.loads(out)["server"]["vm_state"] == "VM_STATE_ACTIVE"


async def test_plaintext_and_untrusting_clients_are_refused(tls_stack, tmp_path):
    s = tls_stack
    rc, _, err = await grpcurl("-plaintext", s.cfg.api_address, "list")
    assert rc != 0
    async with grpc.aio.insecure_channel(s.cfg.api_address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await health(ch)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    other = CA("another CA").write(str(tmp_path / "other-ca.crt"))
    async with channel(s.cfg.api_address, tls.ClientTLS(ca=other)) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await health(ch)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    rc, _, err = await grpcurl("-cacert", other, s.cfg.api_address, "list")
    assert rc != 0 and "certificate" in err


async def test_a_rotated_certificate_is_served_without_restart(tls_stack):
    s = tls_stack
    address = s.cfg.api_address
    before = served_serial(address, s.cfg.tls_ca)
    tls_dir = os.path.dirname(s.cfg.tls_cert)
    s.ca.issue(tls_dir, "nimbus")   # the same paths, a new key and certificate
    after = served_serial(address, s.cfg.tls_ca)
    assert after != before and after == CA.serial(s.cfg.tls_cert)
    # A client connecting now verifies the new one; the API kept working.
    async with channel(address, tls.client(s.cfg)) as ch:
        assert await health(ch) == health_pb2.HealthCheckResponse.SERVING
    resp = await s.api.ListServers(C.ListServersRequest(), metadata=user())
    assert len(resp.servers) >= 0


async def test_a_half_written_rotation_keeps_the_old_certificate(tls_stack, tmp_path):
    """A key that does not match the certificate (the two files are not
    written at once) is not served: the last good pair stays."""
    s = tls_stack
    address = s.cfg.api_address
    good = served_serial(address, s.cfg.tls_ca)
    other_cert, other_key = s.ca.issue(str(tmp_path), "other")
    with open(s.cfg.tls_key, "rb") as f:
        kept_key = f.read()
    with open(other_key, "rb") as f, open(s.cfg.tls_key + ".tmp", "wb") as out:
        out.write(f.read())
    os.replace(s.cfg.tls_key + ".tmp", s.cfg.tls_key)   # new key, old certificate
    try:
        assert served_serial(address, s.cfg.tls_ca) == good
    finally:
        with open(s.cfg.tls_key + ".tmp", "wb") as out:
            out.write(kept_key)
        os.replace(s.cfg.tls_key + ".tmp", s.cfg.tls_key)


async def test_mtls_internal_links(etcd, tmp_path, qcow2_image):
    """With --tls-client-auth every server requires a client certificate
    from the CA: the stack's own links present theirs; a client without one
    is refused; an agent's certificate (CN agent.<host>) is its host identity."""
    async with Stack(etcd.endpoint, str(tmp_path), hosts=1, tls_on=True,
                     tls_client_auth=True) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="mtls-1", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
        assert (await s.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
        for address in (s.cfg.conductor_address, s.cfg.scheduler_address):
            async with channel(address, tls.ClientTLS(ca=s.cfg.tls_ca)) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await health(ch)
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
            rc, out, err = await grpcurl("-cacert", s.cfg.tls_ca, "-cert", s.cfg.tls_cert,
                                         "-key", s.cfg.tls_key, address,
                                         "grpc.health.v1.Health/Check")
            assert rc == 0 and json.loads(out)["status"] == "SERVING", err

        # An agent with no token at all: its certificate (CN agent.<host>) is its identity.
        cert, key = s.ca.issue(str(tmp_path), "agent-cert", cn="agent.cert-host")
        cfg = config.Config(**vars(s.cfg))
        cfg.service_token, cfg.simulate, cfg.host = "", 0, "cert-host"
        cfg.tls_cert, cfg.tls_key = cert, key
        assert agent_main.check(cfg) is None
        agent = await AgentProcess(cfg).start()
        try:
            await s.wait_hosts(2)
            assert "cert-host" in {v.msg.host for v in s.scheduler.hosts.nodes.items.values()}
            as_agent = tls.ClientTLS(ca=s.cfg.tls_ca, cert=cert, key=key)
            async with channel(s.cfg.conductor_address, as_agent) as ch:
                conductor = conductor_pb2_grpc.ConductorServiceStub(ch)
                theirs = conductor.StreamAssignments(CD.StreamAssignmentsRequest(
                    host=s.agents.agents[0].host))
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await theirs.read()
                assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
                ours = conductor.StreamAssignments(CD.StreamAssignmentsRequest(host="cert-host"))
                assert (await ours.read()).type
                ours.cancel()
            # The services' certificate names no agent: without a token it is nobody.
            async with channel(s.cfg.conductor_address, tls.client(s.cfg)) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await conductor_pb2_grpc.ConductorServiceStub(ch).StreamAssignments(
                        CD.StreamAssignmentsRequest(host="cert-host")).read()
                assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await agent.stop()


async def test_database_service_and_its_guests_over_tls(etcd, tmp_path, qcow2_image):
    """DatabaseService serves TLS; its task manager dials ComputeService over
    TLS, and the guest agent verifies DatabaseService with the CA its config
    drive carries: a PostgreSQL instance reaches ACTIVE and HEALTHY."""
    from dbstack import DbStack
    from nimbus.database.v1 import database_pb2 as D
    async with DbStack(etcd.endpoint, str(tmp_path), qcow2_image, tls_on=True) as s:
        me = user("alice", "demo")
        created = (await s.db.CreateInstance(D.CreateInstanceRequest(
            name="db-tls", flavor_ref="m1.tiny", datastore=D.DatastoreRef(type="postgresql"),
            volume=D.VolumeSpec(size_gb=1)), metadata=me)).instance
        active = await s.wait_settled(created.id, timeout=120)
        assert active.status == D.INSTANCE_STATUS_ACTIVE, active.fault
        assert active.service_status == D.SERVICE_STATUS_HEALTHY
        rc, out, err = await grpcurl("-cacert", s.stack.cfg.tls_ca, s.address,
                                     "grpc.health.v1.Health/Check")
        assert rc == 0 and json.loads(out)["status"] == "SERVING", err
        async with grpc.aio.insecure_channel(s.address) as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await health(ch)
        await s.db.DeleteInstance(D.DeleteInstanceRequest(id=created.id), metadata=me)
        assert await s.wait_for(created.id, lambda i: i is None) is None
