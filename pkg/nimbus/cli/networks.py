"""nimbus network/subnet/port create/list/show/delete (Neutron's core model)."""

from __future__ import annotations

import click

from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, output_options
from nimbus.cli.resources import add_delete, add_list, add_show
from nimbus.compute.v1 import networks_pb2 as N

NETWORK_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Shared", "shared"), ("MTU", "mtu"),
                          ("Subnets", "subnets"))
SUBNET_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Network", "network_id"),
                         ("CIDR", "cidr"), ("Gateway", "gateway_ip"))
PORT_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Network", "network_id"),
                       ("MAC", "mac_address"), ("Fixed IPs", "fixed_ips"), ("Server", "device_id"),
                       ("Status", "status"))


@click.group()
def network():
    """Networks."""


@click.group()
def subnet():
    """Subnets of networks (address ranges)."""


@click.group()
def port():
    """Ports: a network attachment with its MAC and addresses."""


@network.command("create")
@click.argument("name")
@click.option("--shared", is_flag=True, help="Visible to every project (admin).")
@click.option("--mtu", type=click.IntRange(68, 9000), help="Default 1500.")
@output_options
@pass_session
def network_create(session: Session, out: Output, name, shared, mtu):
    """Create a network."""
    client = session.client
    request = N.CreateNetworkRequest(name=name, shared=shared, mtu=mtu or 0)
    out.item(client.call(client.networks.CreateNetwork, request).network)


@subnet.command("create")
@click.argument("name")
@click.option("--network", "network_id", required=True, help="Network id.")
@click.option("--subnet-range", "cidr", required=True, metavar="CIDR", help="e.g. 10.0.0.0/24.")
@click.option("--gateway", help="Gateway address; default the first host; `none` for none.")
@click.option("--dns-nameserver", "dns", multiple=True, help="Repeatable, at most 5.")
@output_options
@pass_session
def subnet_create(session: Session, out: Output, name, network_id, cidr, gateway, dns):
    """Create a subnet on a network."""
    request = N.CreateSubnetRequest(network_id=network_id, name=name, cidr=cidr,
                                    dns_nameservers=dns)
    if gateway is not None:
        request.gateway_ip = "" if gateway == "none" else gateway
    client = session.client
    out.item(client.call(client.networks.CreateSubnet, request).subnet)


@port.command("create")
@click.argument("name")
@click.option("--network", "network_id", required=True, help="Network id.")
@click.option("--fixed-ip", "fixed_ips", multiple=True, metavar="SUBNET[:ADDRESS]",
              help="A subnet id, optionally with the address to take (repeatable).")
@click.option("--mac-address", default="", help="Default: generated.")
@output_options
@pass_session
def port_create(session: Session, out: Output, name, network_id, fixed_ips, mac_address):
    """Create a port (hand it to `server create` or keep it)."""
    ips = [N.FixedIp(subnet_id=s, ip_address=a) for s, _, a in (f.partition(":") for f in fixed_ips)]
    request = N.CreatePortRequest(network_id=network_id, name=name, fixed_ips=ips,
                                  mac_address=mac_address)
    client = session.client
    out.item(client.call(client.networks.CreatePort, request).port)


add_list(network, "networks", "ListNetworks", N.ListNetworksRequest, "networks", NETWORK_COLUMNS,
         "List your networks and the shared ones.")
add_list(subnet, "networks", "ListSubnets", N.ListSubnetsRequest, "subnets", SUBNET_COLUMNS,
         "List subnets.", filters=(click.option("--network", "network_id", default="",
                                                help="Only this network's."),))
add_list(port, "networks", "ListPorts", N.ListPortsRequest, "ports", PORT_COLUMNS, "List ports.",
         filters=(click.option("--network", "network_id", default="", help="Only this network's."),
                  click.option("--server", "device_id", default="", help="Only this server's.")))
for _group, _rpc, _request, _answer in (
        (network, "Network", N.GetNetworkRequest, "network"),
        (subnet, "Subnet", N.GetSubnetRequest, "subnet"),
        (port, "Port", N.GetPortRequest, "port")):
    add_show(_group, "networks", f"Get{_rpc}", _request, _answer, _answer)
    add_delete(_group, "networks", f"Delete{_rpc}", getattr(N, f"Delete{_rpc}Request"), _answer)

GROUPS = (network, subnet, port)
