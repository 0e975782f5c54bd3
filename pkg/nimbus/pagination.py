"""Pagination for List RPCs: one set of rules.

- `page_size` 0 means the default (and the most), never more than the most;
  negative is INVALID_ARGUMENT.
- `page_token` is opaque: the last item's sort key, bound to the query it
  was made for (who asks, the filters, the sort). A token that does not
  decode, or was made for another query, is INVALID_ARGUMENT, never a
  silently empty page. Visibility is applied to every page anyway, so a
  forged token can only skip, never reveal.
- Items are ordered by (sort key, id), so pages are stable while records
  change: an item is on at most one page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable, Sequence, TypeVar

from nimbus import errors

T = TypeVar("T")
MAX_PAGE = 1000


def page_size_of(page_size: int, most: int = MAX_PAGE) -> int:
    if page_size < 0:
        raise errors.InvalidArgument("page_size", "must not be negative")
    return min(page_size or most, most)


def query_scope(*parts: Any) -> str:
    """What a token is bound to: a short hash of the query's parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encode(cursor: list, scope: str) -> str:
    raw = json.dumps({"c": cursor, "q": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, scope: str) -> list:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        cursor, bound = body["c"], body["q"]
        if not isinstance(cursor, list):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise errors.InvalidArgument("page_token", "is not a token this API issued") from None
    if bound != scope:
        raise errors.InvalidArgument(
            "page_token", "was issued for another query (filters, sort or caller differ)")
    return cursor


def paginate(items: Sequence[T], key: Callable[[T], list], *, page_size: int, page_token: str,
             scope: str, descending: bool = False) -> tuple[list[T], str]:
    """One page of `items` (any order in): sorted by key(item) — a list of
    JSON values ending with a unique id — ascending or descending; returns
    the page and the next token ("" on the last page)."""
    size = page_size_of(page_size)
    ordered = sorted(items, key=key, reverse=descending)
    if page_token:
        cursor = _decode(page_token, scope)
        ordered = [i for i in ordered if (key(i) < cursor if descending else key(i) > cursor)]
    page = ordered[:size]
    token = _encode(key(page[-1]), scope) if len(ordered) > size else ""
    return page, token


def _request_scope(request, query: tuple) -> str:
    return query_scope(type(request).__name__, *query)


def page_of(request, items: Sequence[T], key: Callable[[T], list], *query: Any,
            descending: bool = False) -> tuple[list[T], str]:
    """`paginate` for a List request with page_size/page_token: the token is
    bound to the request's type (the RPC) and `query` (the caller and the
    filters), so it cannot be replayed on another list."""
    return paginate(items, key, page_size=request.page_size, page_token=request.page_token,
                    scope=_request_scope(request, query), descending=descending)


def check(request, *query: Any) -> None:
    """The checks `page_of` makes on page_size and page_token, before the
    items are fetched: a list that asks a guest for them refuses a bad
    token without the round trip. Same `query` as the page_of call."""
    page_size_of(request.page_size)
    if request.page_token:
        _decode(request.page_token, _request_scope(request, query))
