"""ListServers' filters and sorts, as Nova's users expect them."""

from __future__ import annotations

import re
from typing import Callable

from nimbus import errors
from nimbus.compute.v1 import compute_pb2 as C

MAX_PATTERN = 100
# A repeated group that itself repeats ((a+)+, (a*)*, (a|a)+ ...) can take
# exponential time in Python's re: refuse those rather than hang a worker.
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*[*+?}](?:[^()\\]|\\.)*\)\s*[*+{]"
                            r"|\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)\s*[*+{]")


def name_pattern(pattern: str) -> re.Pattern | None:
    """Nova matches `name` as a regular expression searched in the name."""
    if not pattern:
        return None
    if len(pattern) > MAX_PATTERN:
        raise errors.InvalidArgument("name", f"at most {MAX_PATTERN} characters")
    if _NESTED_REPEAT.search(pattern):
        raise errors.InvalidArgument("name", "nested repetition is not allowed in the pattern")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise errors.InvalidArgument("name", f"not a regular expression: {exc}") from None


def _created_at(s: C.Server) -> list:
    return [s.created_at.ToNanoseconds(), s.id]


def _updated_at(s: C.Server) -> list:
    return [s.updated_at.ToNanoseconds(), s.id]


def _name(s: C.Server) -> list:
    return [s.name, s.id]


def _vm_state(s: C.Server) -> list:
    return [s.vm_state, s.id]


def _id(s: C.Server) -> list:
    return [s.id]


SORT_KEYS: dict[str, Callable[[C.Server], list]] = {
    "created_at": _created_at, "updated_at": _updated_at, "name": _name,
    "vm_state": _vm_state, "id": _id}


def server_sort(sort_key: str, sort_dir: str) -> tuple[Callable[[C.Server], list], bool]:
    """(key function, descending); Nova's default is created_at, newest first."""
    key = SORT_KEYS.get(sort_key or "created_at")
    if key is None:
        raise errors.InvalidArgument("sort_key", f"one of {', '.join(SORT_KEYS)}")
    if sort_dir not in ("", "asc", "desc"):
        raise errors.InvalidArgument("sort_dir", "asc or desc")
    return key, sort_dir != "asc"
