"""--etcd takes one endpoint or a cluster's members."""

import pytest

from nimbus import config
from nimbus.store.store import endpoints_of


@pytest.mark.parametrize("spec, members", [
    ("127.0.0.1:2379", ["127.0.0.1:2379"]),
    ("http://10.0.0.1:2379,10.0.0.2:2379/, http://10.0.0.3:2379", ["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"]),
    (":2379", ["127.0.0.1:2379"]),
])
def test_endpoints_of(spec, members):
    assert endpoints_of(spec) == members


@pytest.mark.parametrize("spec", ["", " , ", "etcd.example", "h:port"])
def test_endpoints_of_refuses(spec):
    with pytest.raises(ValueError):
        endpoints_of(spec)


@pytest.mark.parametrize("argv, env, expected", [
    (["--etcd", "a:1,b:2"], {}, "a:1,b:2"),
    (["--etcd-endpoint", "c:3"], {}, "c:3"),
    ([], {"NIMBUS_ETCD": "d:4,e:5"}, "d:4,e:5"),
    ([], {"NIMBUS_ETCD": "d:4", "NIMBUS_ETCD_ENDPOINT": "f:6"}, "f:6"),
])
def test_the_etcd_flag_and_its_variables(monkeypatch, argv, env, expected):
    monkeypatch.delenv("NIMBUS_ETCD", raising=False)
    monkeypatch.delenv("NIMBUS_ETCD_ENDPOINT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert config.parse(argv, "test").etcd_endpoint == expected


def test_free_ports_are_outside_the_ephemeral_range_and_not_repeated():
    """Listeners' ports come from below the kernel's ephemeral range, where
    an outgoing connection cannot take them between the check and the bind."""
    import socket

    from nimbus.etcd import _ephemeral_range, free_port
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= p <= high for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
