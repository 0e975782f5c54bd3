"""Where the CLI finds its API and token: flags > environment > clouds file.

click reads each flag or its NIMBUS_* variable; what neither gives comes from
the selected cloud of the clouds file (NIMBUS_CLOUDS_FILE, else
$XDG_CONFIG_HOME/nimbus/clouds.yaml, else ~/.config/nimbus/clouds.yaml):

    clouds:
      dev:
        api: 127.0.0.1:8774
        token: alice:demo
        cacert: ca.pem        # relative to the file's folder

The cloud is --os-cloud / NIMBUS_CLOUD, else the one named `default`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click
import yaml

DEFAULT_API = "127.0.0.1:8774"
CLOUD_KEYS = ("api", "database_api", "token", "cacert")
DEFAULT_DATABASE_API = "127.0.0.1:8779"


class ConfigError(click.ClickException):
    """The configuration is unusable: a usage error (exit 2)."""
    exit_code = 2


@dataclasses.dataclass(frozen=True)
class Cloud:
    api: str
    token: str | None = dataclasses.field(default=None, repr=False)  # never shown
    cacert: str | None = None
    database_api: str = DEFAULT_DATABASE_API   # DatabaseService


def clouds_file(environ=os.environ) -> Path:
    if path := environ.get("NIMBUS_CLOUDS_FILE"):
        return Path(path)
    base = environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "nimbus" / "clouds.yaml"


def load_clouds(path: Path) -> dict[str, dict]:
    """The file's clouds by name ({} when there is no file)."""
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    clouds = data.get("clouds", {}) if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        raise ConfigError(f"{path}: expected a mapping `clouds: {{name: {{api, token, cacert}}}}`")
    for name, entry in clouds.items():
        unknown = set(entry or {}) - set(CLOUD_KEYS) if isinstance(entry, dict) else {"?"}
        if unknown:
            raise ConfigError(f"{path}: cloud {name!r} may only set {', '.join(CLOUD_KEYS)}")
        if entry and entry.get("cacert"):
            entry["cacert"] = str(path.parent / os.path.expanduser(entry["cacert"]))
    return {name: entry or {} for name, entry in clouds.items()}


def resolve(api: str | None, token: str | None, cacert: str | None, cloud: str | None,
            path: Path, database_api: str | None = None) -> Cloud:
    """The settings to use: the given values (flags or environment, as click
    read them) over the cloud's entry over the defaults."""
    clouds = load_clouds(path)
    if cloud and cloud not in clouds:
        known = ", ".join(sorted(clouds)) or "none"
        raise ConfigError(f"cloud {cloud!r} is not in {path} (clouds there: {known})")
    entry = clouds.get(cloud or "default", {})
    return Cloud(api=api or entry.get("api") or DEFAULT_API, token=token or entry.get("token"),
                 cacert=cacert or entry.get("cacert"),
                 database_api=database_api or entry.get("database_api") or DEFAULT_DATABASE_API)
