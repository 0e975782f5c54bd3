"""nimbus talks to an etcd that serves TLS and asks for client certificates
(etcd's --trusted-ca-file/--client-cert-auth, as the production overlay
runs it): a real etcd with certificates made at test time, and a boot
through the whole stack on it. Without the CA, or without a client
certificate, etcd is unreachable and nimbus says so."""

import subprocess

import pytest

from credentials import CA
from nimbus import config, errors
from nimbus.etcd import etcd_binary, free_port
from nimbus.store.store import Store, etcd_credentials
from stack import C, Stack, user


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    base = tmp_path_factory.mktemp("etcd-tls")
    ca = CA()
    ca_path = ca.write(str(base / "ca.crt"))
    server_cert, server_key = ca.issue(str(base), "etcd")
    client_cert, client_key = ca.issue(str(base), "nimbus-client")
    client, peer = free_port(), free_port()
    url, peer_url = f"https://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = open(base / "etcd.log", "wb")
    proc = subprocess.Popen(
        [etcd_binary(), "--name", "tls", "--data-dir", str(base / "data"),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"tls={peer_url}", "--log-level", "warn",
         "--cert-file", server_cert, "--key-file", server_key,
         "--trusted-ca-file", ca_path, "--client-cert-auth"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    settings = dict(etcd_endpoint=f"127.0.0.1:{client}", etcd_ca=ca_path,
                    etcd_cert=client_cert, etcd_key=client_key)
    yield settings
    proc.terminate()
    proc.wait(10)
    log.close()


async def _connect(settings: dict, **override) -> Store:
    cfg = config.Config(**(settings | override), etcd_prefix="/tls/", etcd_timeout=2.0)
    last = None
    for _ in range(100):   # etcd may still be starting
        try:
            return await Store.for_config(cfg)
        except errors.Unavailable as exc:
            last = exc
    raise last


async def test_a_store_over_tls_with_a_client_certificate(tls_etcd):
    store = await _connect(tls_etcd)
    try:
        await store.txn([], [store.put("probe", C.Flavor(name="x"))])
        assert (await store.get("probe", C.Flavor)).msg.name == "x"
    finally:
        await store.close()


@pytest.mark.parametrize("override, refused", [
    ({"etcd_ca": "", "etcd_cert": "", "etcd_key": ""}, "unreachable"),   # plaintext to TLS
    ({"etcd_cert": "", "etcd_key": ""}, "unreachable"),                  # no client certificate
])
async def test_without_the_right_credentials_etcd_is_unreachable(tls_etcd, override, refused):
    await (await _connect(tls_etcd)).close()   # etcd is up
    cfg = config.Config(**(tls_etcd | override), etcd_prefix="/tls/", etcd_timeout=1.0)
    with pytest.raises(errors.Unavailable) as err:
        await Store.for_config(cfg)
    assert refused in err.value.message


@pytest.mark.parametrize("settings, problem", [
    ({"etcd_cert": "/x.crt"}, "need --etcd-ca"),
    ({"etcd_ca": "/nonexistent/ca.crt"}, "cannot read /nonexistent/ca.crt"),
    ({"etcd_ca": __file__, "etcd_cert": "/x.crt"}, "go together"),
])
def test_bad_etcd_tls_settings_are_named(settings, problem):
    with pytest.raises(ValueError) as err:
        etcd_credentials(config.Config(**settings))
    assert problem in str(err.value)


async def test_a_boot_through_the_stack_on_a_tls_etcd(tls_etcd, tmp_path):
    await (await _connect(tls_etcd)).close()   # etcd is up
    settings = {k: v for k, v in tls_etcd.items() if k != "etcd_endpoint"}
    async with Stack(tls_etcd["etcd_endpoint"], str(tmp_path), hosts=1,
                     subprocesses=("compute",), **settings) as s:
        await s.flavor("m1.tiny")
        image = tmp_path / "img.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
        await s.image(str(image))
        server = (await s.api.CreateServer(C.CreateServerRequest(
            name="t", image_ref="cirros", flavor_ref="m1.tiny"), metadata=user())).servers[0]
        assert (await s.wait_settled(server.id)).vm_state == C.VM_STATE_ACTIVE
