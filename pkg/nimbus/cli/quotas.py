"""nimbus quota show: a project's limits and what it uses of them."""

from __future__ import annotations

import click
from rich.table import Table

from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, console, output_options
from nimbus.compute.v1 import quotas_pb2 as Q


@click.group()
def quota():
    """Quotas (Nova's os-quota-sets)."""


@quota.command("show")
@click.option("--project", default="", help="Another project's (admin); default: yours.")
@output_options
@pass_session
def quota_show(session: Session, out: Output, project):
    """Show each limit and its use (-1: unlimited)."""
    client = session.client
    usage = client.call(client.quotas.GetQuotaUsage, Q.GetQuotaUsageRequest(project_id=project))
    if out.format != "table":
        out.item(usage)
        return
    table = Table("Resource", "Limit", "In use", title=f"project {usage.project_id}")
    for field in Q.QuotaUsageSet.DESCRIPTOR.fields:
        detail = getattr(usage.usage, field.name)
        table.add_row(field.name, "unlimited" if detail.limit == -1 else str(detail.limit),
                      str(detail.in_use))
    console().print(table)


GROUPS = (quota,)
