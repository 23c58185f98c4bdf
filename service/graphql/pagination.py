"""Opaque global ids and cursors, and page-size checks.

Global ids are base64url("Type:123"). Cursors are base64url JSON naming the order they were
issued under plus the keyset position, so a cursor stays valid while articles arrive and is
refused (BAD_CURSOR) under another order.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import orjson

from service.errors import BadCursor, BadInput, LimitExceeded

__all__ = ["decode_cursor", "decode_id", "encode_cursor", "encode_id", "page_size"]

NODE_TYPES: Final = ("Article", "Source", "Entity")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_id(type_name: str, key: int) -> str:
    return _b64(f"{type_name}:{key}".encode())


def decode_id(value: str) -> tuple[str, int]:
    """(type name, database id) of a global id; BAD_INPUT when it is not one of ours."""
    try:
        type_name, _, key = _unb64(value).decode().partition(":")
        if type_name in NODE_TYPES and key.isdigit():
            return type_name, int(key)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadInput(f"{value!r} is not a valid Newsgraph id")


def decode_typed_id(value: str, expected: str) -> int:
    type_name, key = decode_id(value)
    if type_name != expected:
        raise BadInput(f"{value!r} is the id of a {type_name}, not of a {expected}")
    return key


def encode_cursor(kind: str, values: Sequence[object]) -> str:
    def default(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError

    return _b64(orjson.dumps({"k": kind, "v": list(values)}, default=default))


def decode_cursor(cursor: str, kind: str, types: Sequence[type]) -> tuple[object, ...]:
    """The keyset position in `cursor`, checked against the order `kind` and value `types`."""
    try:
        data = orjson.loads(_unb64(cursor))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadCursor("`after` is not a cursor issued by this API") from None
    if not isinstance(data, dict) or not isinstance(data.get("v"), list):
        raise BadCursor("`after` is not a cursor issued by this API")
    if data.get("k") != kind:
        raise BadCursor(
            f"`after` was issued for another order ({data.get('k')!r}); "
            "restart pagination without `after` when changing the order"
        )
    values = data["v"]
    if len(values) != len(types):
        raise BadCursor("`after` is not a cursor issued by this API")
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
            raise BadCursor("`after` is not a cursor issued by this API") from None
    return tuple(result)


def page_size(first: int | None, default: int, maximum: int) -> int:
    """The page size asked for, checked against 1..maximum."""
    if first is None:
        return default
    if first < 1:
        raise BadInput(f"`first` must be at least 1, got {first}", field="first")
    if first > maximum:
        raise LimitExceeded(
            f"`first` must be at most {maximum}, got {first}; page through with `after`",
            field="first",
        )
    return first
