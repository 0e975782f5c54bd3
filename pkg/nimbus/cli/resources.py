"""The list/show/delete commands most resources share, made from a table of
(stub, RPC, request, answer field) instead of written out per resource."""

from __future__ import annotations

import click

from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Column, Output, output_options


def _rpc(session: Session, service: str, rpc: str):
    client = session.client
    return client, getattr(getattr(client, service), rpc)


def add_list(group: click.Group, service: str, rpc: str, request: type, answer: str,
             listed: list[Column], help: str, filters: tuple = ()) -> None:
    """`<group> list [filters]`: each filter is (click option, request field)."""
    @output_options
    @pass_session
    def run(session: Session, out: Output, **given):
        client, method = _rpc(session, service, rpc)
        out.items(client.list_all(method, request(**given), answer), listed)
    for option in filters:
        run = option(run)
    group.command("list", help=help)(run)


def add_show(group: click.Group, service: str, rpc: str, request: type, answer: str,
             noun: str, key: str = "id") -> None:
    """`<group> show REF`, REF passed as the request's `key`."""
    @click.argument("ref", metavar=noun.upper().replace(" ", "_"))
    @output_options
    @pass_session
    def run(session: Session, out: Output, ref):
        client, method = _rpc(session, service, rpc)
        out.item(getattr(client.call(method, request(**{key: ref})), answer))
    group.command("show", help=f"Show a {noun}.")(run)


def add_delete(group: click.Group, service: str, rpc: str, request: type, noun: str,
               key: str = "id") -> None:
    """`<group> delete REF...`."""
    @click.argument("refs", metavar=noun.upper().replace(" ", "_") + "...", nargs=-1, required=True)
    @pass_session
    def run(session: Session, refs):
        client, method = _rpc(session, service, rpc)
        for ref in refs:
            client.call(method, request(**{key: ref}))
            click.echo(f"{noun} {ref} deleted", err=True)
    group.command("delete", help=f"Delete {noun}s.")(run)
