"""nimbus image create/list/show/set/delete and image member …: uploads stream
the file with a progress bar."""

from __future__ import annotations

import os

import click
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)

from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, console, output_options
from nimbus.cli.params import KEY_VALUE
from nimbus.cli.resources import add_delete, add_list, add_show
from nimbus.compute.v1 import compute_pb2 as C

LIST_COLUMNS = columns(("ID", "id"), ("Name", "name"), ("Status", "status"),
                       ("Format", "disk_format"), ("Size", "size"), ("Visibility", "visibility"))
DISK_FORMATS = ("qcow2", "raw", "iso")
VISIBILITIES = ("private", "shared", "public")
MEMBER_STATUSES = ("pending", "accepted", "rejected")
MEMBER_COLUMNS = columns(("Image", "image_id"), ("Member", "member_id"), ("Status", "status"))
CHUNK_BYTES = 1 << 20


@click.group()
def image():
    """Images (Glance's)."""


def _messages(path: str, metadata: C.Image, progress: Progress, task):
    """CreateImage's stream: the metadata, then the file in 1 MiB chunks."""
    yield C.CreateImageRequest(image=metadata)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield C.CreateImageRequest(chunk=chunk)
            progress.advance(task, len(chunk))


@image.command("create")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Default: the file's name without its extension.")
@click.option("--disk-format", type=click.Choice(DISK_FORMATS),
              help="Default: from the file's extension.")
@click.option("--min-ram", type=click.IntRange(min=0), default=0, help="MB the image needs.")
@click.option("--min-disk", type=click.IntRange(min=0), default=0, help="GB the image needs.")
@click.option("--property", "properties", multiple=True, type=KEY_VALUE)
@click.option("--public", is_flag=True, help="Every project sees it (admins only).")
@click.option("--shared", is_flag=True, help="Member projects see it (image member add).")
@output_options
@pass_session
def image_create(session: Session, out: Output, path, name, disk_format, min_ram, min_disk,
                 properties, public, shared):
    """Upload an image from FILE (private to your project; admins may make it public)."""
    stem, ext = os.path.splitext(os.path.basename(path))
    disk_format = disk_format or ext.lstrip(".").lower()
    if disk_format not in DISK_FORMATS:
        raise click.BadParameter(f"cannot tell from {ext or 'no extension'!r}: give one of "
                                 + ", ".join(DISK_FORMATS), param_hint="--disk-format")
    metadata = C.Image(name=name or stem, disk_format=disk_format, min_ram_mb=min_ram,
                       min_disk_gb=min_disk, properties=dict(properties),
                       visibility="public" if public else "shared" if shared else "")
    client = session.client
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeRemainingColumn(),
                        console=console(stderr=True))
    with progress:
        task = progress.add_task(f"uploading {metadata.name}", total=os.path.getsize(path))
        created = client.call(client.compute.CreateImage,
                              _messages(path, metadata, progress, task)).image
    out.item(created)


@image.command("set")
@click.argument("ref", metavar="IMAGE")
@click.option("--name", default=None, help="A new name.")
@click.option("--visibility", type=click.Choice(VISIBILITIES), default=None)
@output_options
@pass_session
def image_set(session: Session, out: Output, ref, name, visibility):
    """Rename an image or change its visibility."""
    client = session.client
    out.item(client.call(client.compute.UpdateImage, C.UpdateImageRequest(
        ref=ref, name=name, visibility=visibility)).image)


@image.group("member")
def member():
    """Projects a shared image is offered to (Glance's image members)."""


@member.command("add")
@click.argument("image_id", metavar="IMAGE_ID")
@click.argument("project")
@output_options
@pass_session
def member_add(session: Session, out: Output, image_id, project):
    """Offer IMAGE_ID to PROJECT (it then accepts with `member set`)."""
    client = session.client
    out.item(client.call(client.compute.AddImageMember, C.AddImageMemberRequest(
        image_id=image_id, member_id=project)).member)


@member.command("remove")
@click.argument("image_id", metavar="IMAGE_ID")
@click.argument("project")
@pass_session
def member_remove(session: Session, image_id, project):
    """Withdraw IMAGE_ID from PROJECT."""
    client = session.client
    client.call(client.compute.RemoveImageMember, C.RemoveImageMemberRequest(
        image_id=image_id, member_id=project))
    click.echo(f"project {project} removed from image {image_id}", err=True)


@member.command("set")
@click.argument("image_id", metavar="IMAGE_ID")
@click.argument("project")
@click.argument("status", type=click.Choice(MEMBER_STATUSES))
@output_options
@pass_session
def member_set(session: Session, out: Output, image_id, project, status):
    """Answer an offer as the member PROJECT: accepted images are listed."""
    client = session.client
    out.item(client.call(client.compute.UpdateImageMember, C.UpdateImageMemberRequest(
        image_id=image_id, member_id=project, status=status)).member)


add_list(member, "compute", "ListImageMembers", C.ListImageMembersRequest, "members",
         MEMBER_COLUMNS, "List an image's members (a member sees only itself).",
         filters=(click.argument("image_id", metavar="IMAGE_ID"),))
add_list(image, "compute", "ListImages", C.ListImagesRequest, "images", LIST_COLUMNS, "List images.")
add_show(image, "compute", "GetImage", C.GetImageRequest, "image", "image", key="ref")
add_delete(image, "compute", "DeleteImage", C.DeleteImageRequest, "image", key="ref")

GROUPS = (image,)
