"""Helpers for tests of API keys, roles and limits: keys in the database, auth headers."""

from __future__ import annotations

import dataclasses
from typing import Any

from service.auth import Principal, Role, generate_token, hash_token, server_secret, shown_prefix
from service.config import Settings
from service.db.api_keys import create_api_key
from service.db.pool import Database


async def make_key(
    db: Database,
    settings: Settings,
    role: str,
    *,
    sources: tuple[str, ...] = (),
    name: str | None = None,
) -> tuple[str, Principal]:
    """A new key in `db`: its token and the principal it stands for."""
    token = generate_token()
    record = await create_api_key(
        db,
        name=name or f"test {role} key",
        role=role,
        prefix=shown_prefix(token),
        key_hash=hash_token(server_secret(settings), token),
        sources=sources,
    )
    principal = Principal(
        key_id=record.id,
        role=Role(role),
        sources=frozenset(sources) if role == "ingest" else None,
        name=record.name,
    )
    return token, principal


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
