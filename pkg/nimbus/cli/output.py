"""Printing results: a rich table by default, or -f json|yaml|value.

json and yaml are protobuf's JSON mapping (json_format: proto field names,
every field present, enums by full name, int64 as strings), so scripts can
rely on them; -c/--column keeps only the named fields. Tables and `value`
show the listed columns (or the -c ones) with enums shortened
(VM_STATE_ACTIVE -> ACTIVE, *_UNSPECIFIED -> empty)."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys

import click
import yaml
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "yaml", "value")


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr; outside a terminal as wide as
    its content, so tables never fold for a pipe."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 1000, highlight=False)


def message_dict(message) -> dict:
    """protobuf's JSON mapping, keys in the order the .proto declares them."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return {f.name: data[f.name] for f in message.DESCRIPTOR.fields if f.name in data}


def _short_enum(field, value) -> str:
    prefix = field.enum_type.values[0].name.removesuffix("UNSPECIFIED")
    short = value.removeprefix(prefix) if isinstance(value, str) else str(value)
    return "" if short == "UNSPECIFIED" else short


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items() if v not in ("", 0, [], {}))
    return str(value)


def display_fields(message) -> dict[str, str]:
    """Every field of a message as the text a table shows."""
    data = message_dict(message)
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = data.get(field.name, "")
        if field.enum_type is not None and not field.is_repeated:
            out[field.name] = _short_enum(field, value)
        else:
            out[field.name] = _cell(value)
    return out


@dataclasses.dataclass(frozen=True)
class Column:
    header: str
    field: str


def columns(*pairs: tuple[str, str]) -> list[Column]:
    return [Column(header, field) for header, field in pairs]


@dataclasses.dataclass
class Output:
    format: str
    selected: tuple[str, ...]

    def _pick(self, available: list[Column]) -> list[Column]:
        if not self.selected:
            return available
        by_name = {c.field.lower(): c for c in available} | {c.header.lower(): c for c in available}
        unknown = [s for s in self.selected if s.lower() not in by_name]
        if unknown:
            raise click.UsageError(f"no column {', '.join(unknown)}; columns: "
                                   + ", ".join(c.field for c in available))
        return [by_name[s.lower()] for s in self.selected]

    def _structured(self, data) -> None:
        if self.format == "json":
            click.echo(json.dumps(data, indent=2, sort_keys=False))
        else:
            click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)

    def item(self, message) -> None:
        """One resource: every field (or the -c ones), as field/value rows."""
        fields = [Column(f.name, f.name) for f in message.DESCRIPTOR.fields]
        picked = self._pick(fields)
        if self.format in ("json", "yaml"):
            data = message_dict(message)
            self._structured({c.field: data[c.field] for c in picked} if self.selected else data)
            return
        shown = display_fields(message)
        if self.format == "value":
            for c in picked:
                click.echo(shown[c.field])
            return
        table = Table("Field", "Value", show_lines=False)
        for c in picked:
            table.add_row(c.field, shown[c.field])
        console().print(table)

    def items(self, messages: list, listed: list[Column]) -> None:
        """A list of resources as rows of the listed columns (or -c ones)."""
        if self.format in ("json", "yaml"):
            data = [message_dict(m) for m in messages]
            if self.selected:
                every = [Column(f.name, f.name) for f in messages[0].DESCRIPTOR.fields] if messages else []
                keep = [c.field for c in self._pick(every or listed)]
                data = [{k: d[k] for k in keep} for d in data]
            self._structured(data)
            return
        picked = self._pick(listed)
        rows = [[display_fields(m)[c.field] for c in picked] for m in messages]
        if self.format == "value":
            for row in rows:
                click.echo(" ".join(row))
            return
        table = Table(*(c.header for c in picked))
        for row in rows:
            table.add_row(*row)
        console().print(table)


def output_options(command):
    """-f/--format and -c/--column; the command receives `out: Output`."""
    @click.option("-f", "--format", "format_", type=click.Choice(FORMATS), default="table",
                  show_default=True, help="Output format.")
    @click.option("-c", "--column", "column", multiple=True,
                  help="Show only this column or field (repeatable).")
    @functools.wraps(command)
    def wrapper(*args, format_, column, **kwargs):
        return command(*args, out=Output(format_, tuple(column)), **kwargs)
    return wrapper
