"""Opaque cursors for keyset pagination: the sort key of the last row of a page."""

from __future__ import annotations

import base64
import json
from typing import Any


class BadCursor(ValueError):
    """A cursor that this server did not hand out."""


def encode_cursor(*key: Any) -> str:
    """An opaque string for ``key`` (the last row's sort columns)."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The key inside ``cursor``.

    :raises BadCursor: it is not one of ours.
    """
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(f"not a cursor from this server: {cursor[:40]!r}") from exc
    if not isinstance(key, list) or len(key) != arity or not all(isinstance(k, (str, int)) for k in key):
        raise BadCursor(f"not a cursor from this server: {cursor[:40]!r}")
    return key
