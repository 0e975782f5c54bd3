"""nimbus database backup create/list/show/delete (BackupService)."""

from __future__ import annotations

import click
import grpc

from nimbus.cli import errors
from nimbus.cli.databases import database, find_instance
from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, console, output_options
from nimbus.database.v1 import backups_pb2 as B

LIST_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Instance", "instance_id"),
                       ("Status", "status"), ("Size", "size_bytes"), ("Datastore", "datastore"),
                       ("Created", "created_at"))
W = B.WatchBackupsResponse


def _status(backup: B.Backup | None) -> str:
    return "deleted" if backup is None else B.BackupStatus.Name(backup.status).removeprefix(
        "BACKUP_STATUS_")


def wait_backup(session: Session, backup: B.Backup, timeout: float,
                gone: bool = False) -> B.Backup | None:
    """Follow WatchBackups (never poll) until the backup is COMPLETED (a
    FAILED or deleted one fails the wait: exit 11, with its reason) or,
    with `gone`, until it is deleted."""
    client = session.client
    out = console(stderr=True)
    shown, seen = "", False
    call = client.stream(client.backups.WatchBackups, B.WatchBackupsRequest(id=backup.id), timeout)
    try:
        for event in call:
            if event.type == W.EVENT_TYPE_UPSERT:
                seen, current = True, event.backup
            elif event.type == W.EVENT_TYPE_DELETED or (event.type == W.EVENT_TYPE_SYNCED and not seen):
                current = None   # deleted, or gone before the watch began
            else:
                continue
            if _status(current) != shown:
                shown = _status(current)
                out.print(f"{backup.name or backup.id}: {shown}")
            if gone:
                if current is None:
                    return None
                continue
            if current is not None and current.status == B.BACKUP_STATUS_COMPLETED:
                return current
            if current is not None and current.status == B.BACKUP_STATUS_FAILED:
                raise errors.ServerFailed(f"backup {backup.name} ({backup.id}) is FAILED: "
                                          f"{current.fail_reason or 'no reason given'}")
            if current is None:
                raise errors.ServerFailed(f"backup {backup.name} ({backup.id}) was deleted")
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise errors.WaitTimedOut(f"backup {backup.name or backup.id} is still {shown} "
                                      f"after {timeout:g} s") from None
        raise
    finally:
        call.cancel()
    raise errors.ServerFailed(f"the watch of backup {backup.name or backup.id} ended")


def find_backup(session: Session, ref: str) -> B.Backup:
    """A backup by id, else by exact name (one match)."""
    client = session.client
    try:
        return client.call(client.backups.GetBackup, B.GetBackupRequest(id=ref)).backup
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            raise
        found = [b for b in client.list_all(client.backups.ListBackups, B.ListBackupsRequest(),
                                            "backups") if b.name == ref]
        if len(found) > 1:
            raise click.UsageError(f"{len(found)} backups are named {ref!r}: give an id") from None
        if not found:
            raise
        return found[0]


def wait_options(command):
    command = click.option("--wait", is_flag=True, help="Follow it until it is done.")(command)
    return click.option("--wait-timeout", type=click.FloatRange(min=1), default=600.0,
                        show_default=True, help="Give up waiting after this many seconds.")(command)


@database.group()
def backup():
    """Backups of database instances (Trove's)."""


@backup.command("create")
@click.argument("instance_ref", metavar="INSTANCE")
@click.option("--name", required=True)
@click.option("--description", default="")
@wait_options
@output_options
@pass_session
def backup_create(session: Session, out: Output, instance_ref, name, description, wait, wait_timeout):
    """Back up a database instance (by id or name).

    Returns at once (NEW) unless --wait: then until COMPLETED, exit 11 when
    it ends FAILED."""
    client = session.client
    target = find_instance(session, instance_ref)
    made = client.call(client.backups.CreateBackup, B.CreateBackupRequest(
        instance_id=target.id, name=name, description=description)).backup
    if wait:
        made = wait_backup(session, made, wait_timeout)
    out.item(made)


@backup.command("list")
@click.option("--instance", "instance_ref", default="",
              help="Only this instance's (id or name; an id also for a deleted one).")
@click.option("--datastore", default="", help="Only this datastore's (postgresql, mariadb).")
@click.option("--all-projects", is_flag=True, help="Every project's (admin).")
@output_options
@pass_session
def backup_list(session: Session, out: Output, instance_ref, datastore, all_projects):
    """List backups."""
    client = session.client
    instance_id = instance_ref
    if instance_ref:
        try:
            instance_id = find_instance(session, instance_ref).id
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:   # a deleted instance's backups outlive it
                raise
    request = B.ListBackupsRequest(instance_id=instance_id, datastore=datastore,
                                   all_projects=all_projects)
    out.items(client.list_all(client.backups.ListBackups, request, "backups"), LIST_COLUMNS)


@backup.command("show")
@click.argument("ref", metavar="BACKUP")
@output_options
@pass_session
def backup_show(session: Session, out: Output, ref):
    """Show a backup (by id or name)."""
    out.item(find_backup(session, ref))


@backup.command("delete")
@click.argument("refs", metavar="BACKUP...", nargs=-1, required=True)
@wait_options
@pass_session
def backup_delete(session: Session, refs, wait, wait_timeout):
    """Delete backups (COMPLETED or FAILED ones).

    Their bytes go first; with --wait, until each is gone from the
    service's watch too."""
    client = session.client
    for ref in refs:
        target = find_backup(session, ref)
        client.call(client.backups.DeleteBackup, B.DeleteBackupRequest(id=target.id))
        if wait:
            wait_backup(session, target, wait_timeout, gone=True)
        click.echo(f"backup {target.name} ({target.id}) deleted", err=True)


GROUPS = ()   # `backup` hangs under `database`
