"""network_data.json for the config drive, from the VIFs the host plugs.
Pure: the agent renders it without importing anything that talks to etcd."""

from __future__ import annotations

import ipaddress
from typing import Iterable

from nimbus.compute.v1 import networks_pb2 as N

DEFAULT_MTU = 1500


def network_data_for_vifs(vifs: Iterable[N.Vif]) -> dict:
    """OpenStack's network_data.json (as Nova's netutils writes it): a link
    per VIF, a network per address (with its default route), and the DNS
    servers."""
    links: list[dict] = []
    networks: list[dict] = []
    services: list[dict] = []
    for vif in vifs:
        link_id = "tap" + vif.port_id[:11]
        links.append({"id": link_id, "vif_id": vif.port_id, "type": "bridge",
                      "mtu": vif.mtu or DEFAULT_MTU, "ethernet_mac_address": vif.mac_address})
        for ip in vif.ips:
            net = ipaddress.ip_network(ip.cidr)
            v4 = net.version == 4
            routes = []
            if ip.gateway_ip:
                any_ = "0.0.0.0" if v4 else "::"
                routes.append({"network": any_, "netmask": any_, "gateway": ip.gateway_ip})
            dns = [{"type": "dns", "address": a} for a in ip.dns_nameservers]
            networks.append({"id": f"network{len(networks)}", "type": "ipv4" if v4 else "ipv6",
                             "link": link_id, "ip_address": ip.ip_address,
                             "netmask": str(net.netmask), "routes": routes,
                             "network_id": vif.network_id, "services": dns})
            services.extend(d for d in dns if d not in services)
    return {"links": links, "networks": networks, "services": services}
