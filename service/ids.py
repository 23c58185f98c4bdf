"""Global ids: opaque to clients, base64url("Type:123") inside.

Shared by the GraphQL and REST faces, so an id from one works in the other.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from service.errors import BadInput

__all__ = ["NODE_TYPES", "b64decode", "b64encode", "decode_id", "decode_typed_id", "encode_id"]

NODE_TYPES: Final = ("Article", "Source", "Entity", "Story")


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding (ids and cursors travel in URLs)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_id(type_name: str, key: int) -> str:
    return b64encode(f"{type_name}:{key}".encode())


def decode_id(value: str) -> tuple[str, int]:
    """(type name, database id) of a global id; BAD_INPUT when it is not one of ours."""
    try:
        type_name, _, key = b64decode(value).decode().partition(":")
        # Keys are bigints: a longer number is not one of ours (and would fail in the driver).
        if type_name in NODE_TYPES and key.isdigit() and int(key) < 2**63:
            return type_name, int(key)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadInput(f"{value!r} is not a valid Newsgraph id")


def decode_typed_id(value: str, expected: str) -> int:
    type_name, key = decode_id(value)
    if type_name != expected:
        raise BadInput(f"{value!r} is the id of a {type_name}, not of a {expected}")
    return key
