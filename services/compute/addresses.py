"""Server.addresses (Nova's): network name -> the server's fixed addresses,
from its ports. An index of ports by server, kept by the ports informer's
events, so a List of many servers does not scan every port for each."""

from __future__ import annotations

import collections
import ipaddress

from nimbus.compute.v1 import compute_pb2 as C
from nimbus.compute.v1 import networks_pb2
from nimbus.store import keys
from nimbus.store.informer import Informer
from nimbus.store.store import Store, Versioned


class Addresses:
    def __init__(self, store: Store, networks: Informer):
        self.ports = Informer(store, keys.PORTS, networks_pb2.Port)
        self.networks = networks
        self._by_server: dict[str, dict[str, networks_pb2.Port]] = collections.defaultdict(dict)
        self.ports.add_listener(self._on_port)

    def _on_port(self, kind: str, key: str, new: Versioned | None, old: Versioned | None) -> None:
        if old is not None and old.msg.device_id:
            self._by_server[old.msg.device_id].pop(old.msg.id, None)
            if not self._by_server[old.msg.device_id]:
                del self._by_server[old.msg.device_id]
        if new is not None and new.msg.device_id:
            self._by_server[new.msg.device_id][new.msg.id] = new.msg

    def fill(self, server: C.Server) -> C.Server:
        """`server` with its addresses (a copy when it has any)."""
        ports = self._by_server.get(server.id)
        if not ports:
            return server
        out = C.Server()
        out.CopyFrom(server)
        for port in sorted(ports.values(), key=lambda p: p.created_at.ToNanoseconds()):
            network = self.networks.items.get(keys.network(port.network_id))
            name = network.msg.name if network is not None and network.msg.name else port.network_id
            for fixed in port.fixed_ips:
                out.addresses[name].addresses.append(C.Address(
                    addr=fixed.ip_address, version=ipaddress.ip_address(fixed.ip_address).version,
                    mac=port.mac_address, type="fixed"))
        return out
