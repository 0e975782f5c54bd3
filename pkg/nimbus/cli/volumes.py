"""nimbus volume create/list/show/delete/extend, nimbus volume snapshot …,
and nimbus server attach-volume/detach-volume/volumes (VolumeService and
ComputeService's attachments)."""

from __future__ import annotations

import click
import grpc

from nimbus.cli import servers
from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, output_options
from nimbus.compute.v1 import compute_pb2 as C
from nimbus.volume.v1 import volume_pb2 as V
from nimbus.volume.v1 import volume_pb2_grpc

VS, SS = V.VolumeStatus, V.SnapshotStatus
LIST_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Status", "status"), ("Size", "size_gb"),
                       ("Type", "volume_type"), ("Bootable", "bootable"))
SNAPSHOT_COLUMNS = columns(("ID", "id"), ("Volume", "volume_id"), ("Name", "name"),
                           ("Status", "status"), ("Size", "size_gb"))
ATTACHMENT_COLUMNS = columns(("Volume", "volume_id"), ("Device", "device"), ("Host", "host"),
                             ("Delete on termination", "delete_on_termination"))
AVAILABLE = (VS.VOLUME_STATUS_AVAILABLE,)
VOLUME_FAILED = (VS.VOLUME_STATUS_ERROR, VS.VOLUME_STATUS_ERROR_DELETING,
                 VS.VOLUME_STATUS_ERROR_EXTENDING)
EXIT_FAILED = 11   # as `server create --wait` on ERROR


def stub(session: Session) -> volume_pb2_grpc.VolumeServiceStub:
    client = session.client
    if not hasattr(client, "volumes"):
        client.volumes = volume_pb2_grpc.VolumeServiceStub(client.channel)
    return client.volumes


def wait_options(command):
    command = click.option("--wait", is_flag=True, help="Follow it until it is done.")(command)
    return click.option("--wait-timeout", type=click.FloatRange(min=1), default=600.0,
                        show_default=True, help="Give up waiting after this many seconds.")(command)


def _follow(session: Session, watch, request, field: str, done, timeout: float):
    """Follow a Watch* stream (no polling) until done(obj) (None: deleted)."""
    client = session.client
    W = V.WatchVolumesResponse   # WatchSnapshotsResponse numbers its events alike
    status_name = (VS if field == "volume" else SS).Name
    seen = False
    try:
        for event in client.stream(watch, request, timeout):
            obj = getattr(event, field)
            if event.type == W.EVENT_TYPE_UPSERT:
                seen = True
                click.echo(f"{obj.id}: {status_name(obj.status)}", err=True)
                if done(obj):
                    return obj
            elif event.type == W.EVENT_TYPE_DELETED and done(None):
                return None
            elif event.type == W.EVENT_TYPE_SYNCED and not seen and done(None):
                return None   # gone before the watch began
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise click.ClickException(f"still not done after {timeout:g} s") from None
        raise
    raise click.ClickException("the watch ended")


def wait_volume(session, volume_id: str, statuses, timeout: float, gone: bool = False):
    def done(v):
        return (v is None) if gone else (v is not None and (v.status in statuses
                                                             or v.status in VOLUME_FAILED))
    found = _follow(session, stub(session).WatchVolumes, V.WatchVolumesRequest(id=volume_id),
                    "volume", done, timeout)
    if found is not None and found.status in VOLUME_FAILED and found.status not in statuses:
        click.echo(f"volume {found.id}: {V.VolumeStatus.Name(found.status)}: {found.fault}", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)
    return found


def find_volume(session: Session, ref: str) -> V.Volume:
    """A volume by id, else by exact name (one match)."""
    volumes = stub(session)
    client = session.client
    try:
        return client.call(volumes.GetVolume, V.GetVolumeRequest(id=ref)).volume
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            raise
        found = client.call(volumes.ListVolumes, V.ListVolumesRequest(name=ref)).volumes
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise click.UsageError(f"{len(found)} volumes are named {ref!r}: give an id") from None
        raise


@click.group()
def volume():
    """Volumes and snapshots (Cinder's)."""


@volume.command("create")
@click.argument("name", default="")
@click.option("--size", "size_gb", type=int, default=0, help="GB (default: the source's).")
@click.option("--type", "volume_type", default="", help="Volume type (default: the default type).")
@click.option("--snapshot", default="", help="From this snapshot.")
@click.option("--source-volume", default="", help="A clone of this volume.")
@click.option("--image", default="", help="From this image (id or name).")
@click.option("--description", default="")
@wait_options
@output_options
@pass_session
def volume_create(session: Session, out: Output, name, size_gb, volume_type, snapshot,
                  source_volume, image, description, wait, wait_timeout):
    """Create a volume; with --wait, until it is available (exit 11 on error)."""
    if sum(map(bool, (snapshot, source_volume, image))) > 1:
        raise click.UsageError("give at most one of --snapshot, --source-volume, --image")
    request = V.CreateVolumeRequest(name=name, size_gb=size_gb, volume_type=volume_type,
                                    description=description)
    if snapshot:
        request.snapshot_id = snapshot
    elif source_volume:
        request.source_volume_id = find_volume(session, source_volume).id
    elif image:
        request.image_ref = image
    made = session.client.call(stub(session).CreateVolume, request).volume
    if wait:
        made = wait_volume(session, made.id, AVAILABLE, wait_timeout)
    out.item(made)


@volume.command("list")
@click.option("--all-projects", is_flag=True, help="Every project's volumes (admin).")
@output_options
@pass_session
def volume_list(session: Session, out: Output, all_projects):
    """List volumes (every page)."""
    request, found = V.ListVolumesRequest(all_projects=all_projects), []
    while True:
        page = session.client.call(stub(session).ListVolumes, request)
        found += page.volumes
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    out.items(found, LIST_COLUMNS)


@volume.command("show")
@click.argument("volume_ref", metavar="VOLUME")
@output_options
@pass_session
def volume_show(session: Session, out: Output, volume_ref):
    """Show a volume (by id or name)."""
    out.item(find_volume(session, volume_ref))


@volume.command("delete")
@click.argument("volume_ref", metavar="VOLUME")
@wait_options
@pass_session
def volume_delete(session: Session, volume_ref, wait, wait_timeout):
    """Delete a volume; with --wait, until it is gone."""
    target = find_volume(session, volume_ref)
    session.client.call(stub(session).DeleteVolume, V.DeleteVolumeRequest(id=target.id))
    if wait:
        wait_volume(session, target.id, (), wait_timeout, gone=True)
        click.echo(f"volume {target.name or target.id} deleted", err=True)


@volume.command("extend")
@click.argument("volume_ref", metavar="VOLUME")
@click.option("--size", "new_size_gb", type=int, required=True, help="The new size, GB.")
@wait_options
@output_options
@pass_session
def volume_extend(session: Session, out: Output, volume_ref, new_size_gb, wait, wait_timeout):
    """Grow a volume; with --wait, until it is available again."""
    target = find_volume(session, volume_ref)
    grown = session.client.call(stub(session).ExtendVolume, V.ExtendVolumeRequest(
        id=target.id, new_size_gb=new_size_gb)).volume
    if wait:
        grown = wait_volume(session, target.id, AVAILABLE, wait_timeout)
    out.item(grown)


@volume.group("snapshot")
def snapshot():
    """A volume's snapshots."""


@snapshot.command("create")
@click.argument("volume_ref", metavar="VOLUME")
@click.option("--name", default="")
@click.option("--force", is_flag=True, help="Snapshot an in-use volume.")
@wait_options
@output_options
@pass_session
def snapshot_create(session: Session, out: Output, volume_ref, name, force, wait, wait_timeout):
    """Snapshot a volume; with --wait, until the snapshot is available."""
    target = find_volume(session, volume_ref)
    made = session.client.call(stub(session).CreateSnapshot, V.CreateSnapshotRequest(
        volume_id=target.id, name=name, force=force)).snapshot
    if wait:
        made = _follow(session, stub(session).WatchSnapshots, V.WatchSnapshotsRequest(id=made.id),
                       "snapshot", lambda s: s is not None and s.status in (
                           SS.SNAPSHOT_STATUS_AVAILABLE, SS.SNAPSHOT_STATUS_ERROR), wait_timeout)
        if made.status == SS.SNAPSHOT_STATUS_ERROR:
            click.echo(f"snapshot {made.id}: error: {made.fault}", err=True)
            raise click.exceptions.Exit(EXIT_FAILED)
    out.item(made)


@snapshot.command("list")
@click.option("--volume", "volume_ref", default="", help="Only this volume's snapshots.")
@output_options
@pass_session
def snapshot_list(session: Session, out: Output, volume_ref):
    """List snapshots."""
    volume_id = find_volume(session, volume_ref).id if volume_ref else ""
    found = session.client.call(stub(session).ListSnapshots,
                                V.ListSnapshotsRequest(volume_id=volume_id)).snapshots
    out.items(list(found), SNAPSHOT_COLUMNS)


@snapshot.command("show")
@click.argument("snapshot_id", metavar="SNAPSHOT")
@output_options
@pass_session
def snapshot_show(session: Session, out: Output, snapshot_id):
    out.item(session.client.call(stub(session).GetSnapshot,
                                 V.GetSnapshotRequest(id=snapshot_id)).snapshot)


@snapshot.command("delete")
@click.argument("snapshot_id", metavar="SNAPSHOT")
@pass_session
def snapshot_delete(session: Session, snapshot_id):
    """Delete a snapshot (refused while volumes are cloned from it on rbd)."""
    session.client.call(stub(session).DeleteSnapshot, V.DeleteSnapshotRequest(id=snapshot_id))


@servers.server.command("attach-volume")
@click.argument("server_ref", metavar="SERVER")
@click.argument("volume_ref", metavar="VOLUME")
@click.option("--device", default="", help="vdb, vdc, … (default: the next free one).")
@click.option("--delete-on-termination", is_flag=True, help="Delete the volume with the server.")
@wait_options
@output_options
@pass_session
def attach_volume(session: Session, out: Output, server_ref, volume_ref, device,
                  delete_on_termination, wait, wait_timeout):
    """Attach a volume to an ACTIVE or STOPPED server; --wait: until in-use."""
    target, vol = servers.find_server(session, server_ref), find_volume(session, volume_ref)
    attachment = session.client.call(session.client.compute.AttachVolume, C.AttachVolumeRequest(
        server_id=target.id, volume_id=vol.id, device=device,
        delete_on_termination=delete_on_termination)).attachment
    if wait:
        wait_volume(session, vol.id, (VS.VOLUME_STATUS_IN_USE,), wait_timeout)
    out.item(attachment)


@servers.server.command("detach-volume")
@click.argument("server_ref", metavar="SERVER")
@click.argument("volume_ref", metavar="VOLUME")
@wait_options
@pass_session
def detach_volume(session: Session, server_ref, volume_ref, wait, wait_timeout):
    """Detach a volume; --wait: until it is available."""
    target, vol = servers.find_server(session, server_ref), find_volume(session, volume_ref)
    session.client.call(session.client.compute.DetachVolume,
                        C.DetachVolumeRequest(server_id=target.id, volume_id=vol.id))
    if wait:
        wait_volume(session, vol.id, AVAILABLE, wait_timeout)
        click.echo(f"volume {vol.name or vol.id} detached", err=True)


@servers.server.command("volumes")
@click.argument("server_ref", metavar="SERVER")
@output_options
@pass_session
def server_volumes(session: Session, out: Output, server_ref):
    """A server's volume attachments."""
    target = servers.find_server(session, server_ref)
    found = session.client.call(session.client.compute.ListVolumeAttachments,
                                C.ListVolumeAttachmentsRequest(server_id=target.id)).attachments
    out.items(list(found), ATTACHMENT_COLUMNS)


GROUPS = (volume,)
