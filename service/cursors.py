"""Opaque cursors and page-size checks, shared by the GraphQL and REST faces.

Cursors are base64url JSON naming the order they were issued under plus the keyset position,
so a cursor stays valid while articles arrive and is refused (BAD_CURSOR) under another order.
A cursor from one face works in the other (REST takes it as `cursor`, GraphQL as `after`).
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from datetime import datetime

import orjson

from service.errors import BadCursor, BadInput, LimitExceeded
from service.ids import b64decode, b64encode

__all__ = ["decode_cursor", "encode_cursor", "page_size"]


def encode_cursor(kind: str, values: Sequence[object]) -> str:
    def default(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError

    return b64encode(orjson.dumps({"k": kind, "v": list(values)}, default=default))


def decode_cursor(
    cursor: str, kind: str, types: Sequence[type], *, name: str = "after"
) -> tuple[object, ...]:
    """The keyset position in `cursor`, checked against the order `kind` and value `types`.

    `name` is the argument's name in messages (`after` in GraphQL, `cursor` in REST).
    """
    try:
        data = orjson.loads(b64decode(cursor))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadCursor(f"`{name}` is not a cursor issued by this API") from None
    if not isinstance(data, dict) or not isinstance(data.get("v"), list):
        raise BadCursor(f"`{name}` is not a cursor issued by this API")
    if data.get("k") != kind:
        raise BadCursor(
            f"`{name}` was issued for another order ({data.get('k')!r}); "
            f"restart pagination without `{name}` when changing the order"
        )
    values = data["v"]
    if len(values) != len(types):
        raise BadCursor(f"`{name}` is not a cursor issued by this API")
    result: list[object] = []
    for value, expected in zip(values, types, strict=True):
        try:
            if expected is datetime:
                result.append(datetime.fromisoformat(value))
            elif expected is float and isinstance(value, int | float):
                result.append(float(value))
            elif isinstance(value, expected) and not isinstance(value, bool):
                result.append(value)
            else:
                raise TypeError
        except (TypeError, ValueError):
            raise BadCursor(f"`{name}` is not a cursor issued by this API") from None
    return tuple(result)


def page_size(
    first: int | None, default: int, maximum: int, *, name: str = "first", after: str = "after"
) -> int:
    """The page size asked for, checked against 1..maximum."""
    if first is None:
        return default
    if first < 1:
        raise BadInput(f"`{name}` must be at least 1, got {first}", field=name)
    if first > maximum:
        raise LimitExceeded(
            f"`{name}` must be at most {maximum}, got {first}; page through with `{after}`",
            field=name,
        )
    return first
