"""click parameter types the commands share."""

from __future__ import annotations

import click


class KeyValue(click.ParamType):
    """KEY=VALUE, converted to a (key, value) pair."""
    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, rest = value.partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key, rest


KEY_VALUE = KeyValue()
