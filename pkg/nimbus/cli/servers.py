"""nimbus server create/list/show/delete (and the actions the API serves)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import click
import grpc

from nimbus.cli import wait as waiting
from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, output_options
from nimbus.compute.v1 import compute_pb2 as C

LIST_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("State", "vm_state"), ("Task", "task_state"),
                       ("Power", "power_state"), ("Host", "host"), ("Flavor", "flavor_ref"),
                       ("Image", "image_ref"))


@click.group()
def server():
    """Servers (Nova's instances)."""


def wait_options(command):
    command = click.option("--wait", is_flag=True, help="Follow the server until it is done.")(command)
    return click.option("--wait-timeout", type=click.FloatRange(min=1), default=600.0,
                        show_default=True, help="Give up waiting after this many seconds.")(command)


def find_server(session: Session, ref: str) -> C.Server:
    """A server by id, else by exact name (one match)."""
    client = session.client
    try:
        return client.call(client.compute.GetServer, C.GetServerRequest(id=ref)).server
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            raise
        found = client.list_all(client.compute.ListServers, C.ListServersRequest(name=ref),
                                "servers")
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise click.UsageError(f"{len(found)} servers are named {ref!r}: give an id") from None
        raise


def _show_servers(out: Output, servers: list[C.Server]) -> None:
    if len(servers) == 1:
        out.item(servers[0])
    else:
        out.items(servers, LIST_COLUMNS)


def _networks(session: Session, refs: tuple[str, ...]) -> dict:
    """CreateServer's network fields from --network values: ids or names,
    or one of `auto`/`none`."""
    if not refs:
        return {}
    if refs in (("auto",), ("none",)):
        return {"networks_mode": refs[0]}
    client = session.client
    from nimbus.compute.v1 import networks_pb2 as N
    known = client.list_all(client.networks.ListNetworks, N.ListNetworksRequest(), "networks")
    by_ref = {n.name: n.id for n in known} | {n.id: n.id for n in known}
    missing = [r for r in refs if r not in by_ref]
    if missing:
        raise click.BadParameter(f"no network {', '.join(missing)}", param_hint="--network")
    return {"networks": [C.NetworkRequest(uuid=by_ref[r]) for r in refs]}


@server.command("create")
@click.argument("name")
@click.option("--image", required=True, help="Image id or name.")
@click.option("--flavor", required=True, help="Flavor id or name.")
@click.option("--network", "networks", multiple=True, metavar="NETWORK",
              help="Network id or name (repeatable), or `auto`/`none`.")
@click.option("--key-name", default="", help="Key pair to inject.")
@click.option("--user-data", type=click.File("rb"), help="File handed to the guest.")
@click.option("--min", "min_count", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max", "max_count", type=click.IntRange(min=1), help="Default: --min.")
@wait_options
@output_options
@pass_session
def server_create(session: Session, out: Output, name, image, flavor, networks, key_name,
                  user_data, min_count, max_count, wait, wait_timeout):
    """Boot servers; with --wait, follow them to ACTIVE (exit 11 on ERROR)."""
    request = C.CreateServerRequest(
        name=name, image_ref=image, flavor_ref=flavor, key_name=key_name,
        min_count=min_count, max_count=max(max_count or min_count, min_count),
        user_data=user_data.read() if user_data else b"", **_networks(session, networks))
    client = session.client
    servers = list(client.call(client.compute.CreateServer, request).servers)
    if wait:
        servers = waiting.wait(client, servers, waiting.ACTIVE, wait_timeout)
    _show_servers(out, servers)


@server.command("list")
@click.option("--all-projects", is_flag=True, help="Every project's servers (admin).")
@click.option("--name", default="", help="Only servers of this name.")
@click.option("--host", default="", help="Only servers on this host (admin).")
@output_options
@pass_session
def server_list(session: Session, out: Output, all_projects, name, host):
    """List servers (every page)."""
    client = session.client
    request = C.ListServersRequest(all_projects=all_projects, name=name, host=host)
    out.items(client.list_all(client.compute.ListServers, request, "servers"), LIST_COLUMNS)


@server.command("show")
@click.argument("server_ref", metavar="SERVER")
@output_options
@pass_session
def server_show(session: Session, out: Output, server_ref):
    """Show a server (by id or name)."""
    out.item(find_server(session, server_ref))


@dataclasses.dataclass(frozen=True)
class Action:
    """A server action: `nimbus server <command> SERVER [options] [--wait]`
    calls ComputeService/<rpc> with {id, **options} and, with --wait,
    follows the server until `goal`."""
    command: str
    rpc: str
    request: type
    goal: waiting.Goal
    help: str
    options: tuple[Callable, ...] = ()


_AFTER_RESIZE = waiting.Goal("done", lambda s: waiting.settled(s) and s.vm_state in (
    C.VM_STATE_ACTIVE, C.VM_STATE_STOPPED, C.VM_STATE_ERROR))

# One entry per action RPC the API serves.
ACTIONS = (
    Action("delete", "DeleteServer", C.DeleteServerRequest, waiting.GONE,
           "Delete a server; with --wait, until it is gone."),
    Action("stop", "StopServer", C.StopServerRequest,
           waiting.in_state(C.VM_STATE_STOPPED, "STOPPED"), "Power a server off."),
    Action("start", "StartServer", C.StartServerRequest,
           waiting.in_state(C.VM_STATE_ACTIVE, "ACTIVE"), "Power a stopped server on."),
    Action("reboot", "RebootServer", C.RebootServerRequest,
           waiting.in_state(C.VM_STATE_ACTIVE, "ACTIVE"), "Reboot a server (soft unless --hard).",
           (click.option("--hard", "type", flag_value=C.REBOOT_TYPE_HARD,
                         default=C.REBOOT_TYPE_SOFT, help="Power-cycle instead of asking the guest."),)),
    Action("resize", "ResizeServer", C.ResizeServerRequest,
           waiting.in_state(C.VM_STATE_RESIZED, "RESIZED"),
           "Resize to another flavor; then confirm or revert.",
           (click.option("--flavor", "flavor_ref", required=True, help="The new flavor."),)),
    Action("confirm", "ConfirmServerResize", C.ConfirmServerResizeRequest, _AFTER_RESIZE,
           "Keep a resize (the old host is cleaned up)."),
    Action("revert", "RevertServerResize", C.RevertServerResizeRequest, _AFTER_RESIZE,
           "Undo a resize: the old flavor, host and disks."),
    Action("migrate", "MigrateServer", C.MigrateServerRequest,
           waiting.in_state(C.VM_STATE_RESIZED, "RESIZED"),
           "Cold-migrate a server (admin); then confirm or revert.",
           (click.option("--host", default="", help="Destination (default: the scheduler's)."),)),
)


def _action_command(action: Action) -> click.Command:
    @click.argument("server_ref", metavar="SERVER")
    @wait_options
    @output_options
    @pass_session
    def run(session: Session, out: Output, server_ref, wait, wait_timeout, **options):
        client = session.client
        target = find_server(session, server_ref)
        response = client.call(getattr(client.compute, action.rpc),
                               action.request(id=target.id, **options))
        result = response.server if "server" in response.DESCRIPTOR.fields_by_name else target
        if wait:
            result = waiting.wait(client, [result], action.goal, wait_timeout)[0]
        if result is None:
            click.echo(f"server {target.name or target.id} deleted", err=True)
        else:
            out.item(result)
    for option in action.options:
        run = option(run)
    return server.command(action.command, help=action.help)(run)


for _action in ACTIONS:
    _action_command(_action)


@server.command("console-log")
@click.argument("server_ref", metavar="SERVER")
@click.option("--lines", type=int, default=0, help="Only the last N lines (0: all).")
@pass_session
def server_console_log(session: Session, server_ref, lines):
    """Print a server's serial console output."""
    client = session.client
    target = find_server(session, server_ref)
    response = client.call(client.compute.GetConsoleOutput,
                           C.GetConsoleOutputRequest(id=target.id, length=lines))
    click.echo(response.output, nl=False)

GROUPS = (server,)
