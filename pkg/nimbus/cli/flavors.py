"""nimbus flavor list/show/create."""

from __future__ import annotations

import click

from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, output_options
from nimbus.cli.params import KEY_VALUE
from nimbus.cli.resources import add_list, add_show
from nimbus.compute.v1 import compute_pb2 as C

LIST_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("vCPUs", "vcpus"), ("RAM (MB)", "ram_mb"),
                       ("Disk (GB)", "disk_gb"), ("Public", "is_public"))


@click.group()
def flavor():
    """Flavors: the sizes servers come in."""


@flavor.command("create")
@click.argument("name")
@click.option("--vcpus", type=int, required=True)
@click.option("--ram", "ram_mb", type=int, required=True, help="Memory in MB.")
@click.option("--disk", "disk_gb", type=int, default=0, show_default=True, help="Root disk in GB.")
@click.option("--ephemeral", "ephemeral_gb", type=int, default=0, help="Ephemeral disk in GB.")
@click.option("--swap", "swap_mb", type=int, default=0, help="Swap in MB.")
@click.option("--public/--private", "is_public", default=True, show_default=True)
@click.option("--property", "properties", multiple=True, type=KEY_VALUE,
              help="An extra spec (repeatable).")
@output_options
@pass_session
def flavor_create(session: Session, out: Output, properties, **fields):
    """Create a flavor (admin)."""
    specs = dict(properties)
    client = session.client
    request = C.CreateFlavorRequest(flavor=C.Flavor(extra_specs=specs, **fields))
    out.item(client.call(client.compute.CreateFlavor, request).flavor)


add_list(flavor, "compute", "ListFlavors", C.ListFlavorsRequest, "flavors", LIST_COLUMNS,
         "List flavors.")
add_show(flavor, "compute", "GetFlavor", C.GetFlavorRequest, "flavor", "flavor", key="ref")

GROUPS = (flavor,)
