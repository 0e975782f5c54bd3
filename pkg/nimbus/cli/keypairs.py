"""nimbus keypair create/list/show/delete."""

from __future__ import annotations

import os

import click

from nimbus.cli.main import Session, pass_session
from nimbus.cli.output import Output, columns, output_options
from nimbus.cli.resources import add_delete, add_list, add_show
from nimbus.compute.v1 import keypairs_pb2 as K

LIST_COLUMNS = columns(("Name", "name"), ("Type", "key_type"), ("Fingerprint", "fingerprint"))


@click.group()
def keypair():
    """SSH key pairs (a user's, not a project's)."""


@keypair.command("create")
@click.argument("name")
@click.option("--public-key", type=click.File("r"), help="Import this OpenSSH public key file.")
@click.option("--private-key", type=click.Path(dir_okay=False, writable=True),
              help="Write the generated private key to this file (mode 0600) instead of stdout.")
@click.option("--type", "algorithm", type=click.Choice(["ed25519", "rsa-2048"]), default="ed25519",
              show_default=True, help="Algorithm of a generated key.")
@output_options
@pass_session
def keypair_create(session: Session, out: Output, name, public_key, private_key, algorithm):
    """Generate a key pair (its private key is shown this once) or import one."""
    if public_key and private_key:
        raise click.UsageError("--private-key is for generated keys, not with --public-key")
    request = K.CreateKeypairRequest(
        name=name, public_key=public_key.read().strip() if public_key else "",
        algorithm=K.KEY_ALGORITHM_RSA_2048 if algorithm == "rsa-2048" else K.KEY_ALGORITHM_ED25519)
    client = session.client
    response = client.call(client.keypairs.CreateKeypair, request)
    if response.private_key and private_key:
        fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(response.private_key)
        out.item(response.keypair)
    elif response.private_key:
        click.echo(response.private_key, nl=not response.private_key.endswith("\n"))
    else:
        out.item(response.keypair)


add_list(keypair, "keypairs", "ListKeypairs", K.ListKeypairsRequest, "keypairs", LIST_COLUMNS,
         "List your key pairs.")
add_show(keypair, "keypairs", "GetKeypair", K.GetKeypairRequest, "keypair", "key pair", key="name")
add_delete(keypair, "keypairs", "DeleteKeypair", K.DeleteKeypairRequest, "key pair", key="name")

GROUPS = (keypair,)
