"""nimbus database instance create/list/show/delete (DatabaseService)."""

from __future__ import annotations

import click
import grpc

from nimbus.cli import errors
from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, console, output_options
from nimbus.cli.resources import add_list
from nimbus.database.v1 import database_pb2 as D

LIST_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Status", "status"),
                       ("Task", "task_status"), ("Service", "service_status"),
                       ("Datastore", "datastore"), ("Host", "host"), ("Port", "port"))
W = D.WatchInstancesResponse
FAILED = (D.INSTANCE_STATUS_ERROR, D.INSTANCE_STATUS_FAILED)


@click.group()
def database():
    """Managed databases (Trove's)."""


@database.group()
def instance():
    """Database instances."""


def _words(inst: D.Instance) -> str:
    return "/".join((D.InstanceStatus.Name(inst.status).removeprefix("INSTANCE_STATUS_"),
                     D.ServiceStatus.Name(inst.service_status).removeprefix("SERVICE_STATUS_")))


def wait_active(client, inst: D.Instance, timeout: float) -> D.Instance:
    """Follow WatchInstances (never poll) until ACTIVE with a HEALTHY
    datastore; ERROR/FAILED (the fault printed) or a vanished instance fail."""
    out = console(stderr=True)
    shown = ""
    call = client.stream(client.databases.WatchInstances, D.WatchInstancesRequest(id=inst.id),
                         timeout)
    try:
        for event in call:
            if event.type == W.EVENT_TYPE_DELETED:
                raise errors.ServerFailed(f"database instance {inst.name} was deleted")
            if event.type != W.EVENT_TYPE_UPSERT:
                continue
            inst = event.instance
            if _words(inst) != shown:
                shown = _words(inst)
                out.print(f"{inst.name}: {shown}")
            if inst.status in FAILED:
                raise errors.ServerFailed(f"database instance {inst.name} is {shown}: "
                                          f"{inst.fault.message or 'no fault given'}")
            if inst.status == D.INSTANCE_STATUS_ACTIVE and \
                    inst.service_status == D.SERVICE_STATUS_HEALTHY:
                return inst
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise errors.WaitTimedOut(f"{inst.name} is not ACTIVE after {timeout:g} s") from None
        raise
    finally:
        call.cancel()
    raise errors.ServerFailed(f"the watch of {inst.name} ended")


@instance.command("create")
@click.argument("name")
@click.option("--flavor", "flavor_ref", required=True)
@click.option("--datastore", default="", help="postgresql or mariadb (default: the configured one).")
@click.option("--datastore-version", default="", help="Default: the datastore's default version.")
@click.option("--size", "size_gb", type=click.IntRange(min=0), default=0, help="Volume size, GB.")
@click.option("--database", "databases", multiple=True, help="A database to create (repeat).")
@click.option("--user", "users", multiple=True, metavar="NAME:PASSWORD",
              help="A user with access to every --database (repeat).")
@click.option("--wait", is_flag=True, help="Follow it until ACTIVE and HEALTHY.")
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True)
@output_options
@pass_session
def instance_create(session: Session, out: Output, name, flavor_ref, datastore, datastore_version,
                    size_gb, databases, users, wait, wait_timeout):
    """Create a database instance (returns at once in BUILD, unless --wait)."""
    specs = []
    for user in users:
        user_name, sep, password = user.partition(":")
        if not sep:
            raise click.BadParameter("NAME:PASSWORD", param_hint="--user")
        specs.append(D.UserSpec(name=user_name, password=password, databases=databases))
    client = session.client
    request = D.CreateInstanceRequest(
        name=name, flavor_ref=flavor_ref,
        datastore=D.DatastoreRef(type=datastore, version=datastore_version),
        databases=[D.DatabaseSpec(name=d) for d in databases], users=specs)
    if size_gb:
        request.volume.size_gb = size_gb
    created = client.call(client.databases.CreateInstance, request).instance
    out.item(wait_active(client, created, wait_timeout) if wait else created)


add_list(instance, "databases", "ListInstances", D.ListInstancesRequest, "instances",
         LIST_COLUMNS, "List database instances.")


def find_instance(session: Session, ref: str) -> D.Instance:
    """An instance by id, else by exact name (one match)."""
    client = session.client
    try:
        return client.call(client.databases.GetInstance, D.GetInstanceRequest(id=ref)).instance
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            raise
        found = [i for i in client.list_all(client.databases.ListInstances,
                                            D.ListInstancesRequest(), "instances")
                 if i.name == ref]
        if len(found) != 1:
            raise
        return found[0]


@instance.command("show")
@click.argument("ref", metavar="INSTANCE")
@output_options
@pass_session
def instance_show(session: Session, out: Output, ref):
    """Show a database instance (by id or name)."""
    out.item(find_instance(session, ref))


@instance.command("delete")
@click.argument("refs", metavar="INSTANCE...", nargs=-1, required=True)
@pass_session
def instance_delete(session: Session, refs):
    """Delete database instances (any status, BUILD included)."""
    client = session.client
    for ref in refs:
        target = find_instance(session, ref)
        client.call(client.databases.DeleteInstance, D.DeleteInstanceRequest(id=target.id))
        click.echo(f"database instance {target.name} deleted", err=True)

GROUPS = (database,)
