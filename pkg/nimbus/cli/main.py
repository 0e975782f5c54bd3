"""The `nimbus` command: global options, the lazily made client, and the
one place gRPC errors become messages and exit codes (errors.py)."""

from __future__ import annotations

import click
import grpc

from nimbus.cli import clouds, errors
from nimbus.cli.client import Client


class Session:
    """What a command needs: the settings, resolved (and a client made) on
    first use, so `--help` works whatever the clouds file holds."""

    def __init__(self, flags: dict, timeout: float):
        self._flags = flags
        self.timeout = timeout
        self.cloud: clouds.Cloud | None = None
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self.cloud = clouds.resolve(**self._flags, path=clouds.clouds_file())
            self._client = Client(self.cloud, self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_session = click.make_pass_decorator(Session)


class NimbusGroup(click.Group):
    """Turns a failed call into its message and exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except grpc.RpcError as err:
            session = ctx.find_object(Session)
            api = session.cloud.api if session and session.cloud else ""
            click.echo(errors.describe(err, api), err=True)
            ctx.exit(errors.exit_code(err.code()))


@click.group(cls=NimbusGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Exit codes by gRPC status: see the README's 'The nimbus CLI'.")
@click.option("--api", envvar="NIMBUS_API", metavar="HOST:PORT",
              help=f"The API address [env NIMBUS_API; default {clouds.DEFAULT_API}].")
@click.option("--token", envvar="NIMBUS_TOKEN", metavar="TOKEN",
              help="Bearer token, in development <user>:<project> [env NIMBUS_TOKEN].")
@click.option("--cacert", envvar="NIMBUS_CACERT", type=click.Path(dir_okay=False),
              help="CA certificate: use TLS verified against it [env NIMBUS_CACERT].")
@click.option("--database-api", envvar="NIMBUS_DATABASE_API", metavar="HOST:PORT",
              help="DatabaseService [env NIMBUS_DATABASE_API; default 127.0.0.1:8779].")
@click.option("--os-cloud", "cloud", envvar="NIMBUS_CLOUD", metavar="NAME",
              help="A cloud of the clouds file [env NIMBUS_CLOUD; default: `default`].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Deadline of each API call, in seconds.")
@click.pass_context
def cli(ctx: click.Context, api, token, cacert, database_api, cloud, timeout):
    """nimbus: servers, images, flavors, key pairs, networks and quotas.

    Settings come from flags, then NIMBUS_* variables, then the clouds file
    (NIMBUS_CLOUDS_FILE or ~/.config/nimbus/clouds.yaml)."""
    session = Session(dict(api=api, token=token, cacert=cacert, cloud=cloud,
                           database_api=database_api), timeout)
    ctx.obj = session
    ctx.call_on_close(session.close)


def _register() -> None:
    from nimbus.cli import (backups, databases, flavors, images, keypairs, networks, quotas, servers,
                            volumes)
    for module in (servers, images, flavors, keypairs, networks, quotas, databases, backups, volumes):
        for group in module.GROUPS:
            cli.add_command(group)


def main() -> None:
    cli(prog_name="nimbus")


if __name__ == "__main__":
    # `python -m nimbus.cli.main`: this file runs as __main__, a second copy
    # the command modules do not import; run the package's own module.
    from nimbus.cli.main import main as package_main
    package_main()
else:
    _register()
