"""API keys: create, list, revoke, and look up by the keyed hash of a token.

Tokens themselves are never stored or seen here: callers pass `key_hash`, the HMAC of the
token under the server secret (`service.auth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from service.db.pool import Database

__all__ = [
    "ApiKeyRecord",
    "create_api_key",
    "find_api_key",
    "list_api_keys",
    "revoke_api_key",
]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    name: str
    role: str
    prefix: str
    sources: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKeyRecord:
        return cls(
            id=row["id"],
            name=row["name"],
            role=row["role"],
            prefix=row["prefix"],
            sources=tuple(row["sources"]),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )


COLUMNS: Final = "id, name, role, prefix, sources, created_at, last_used_at, revoked_at"

INSERT_KEY: Final = f"""
INSERT INTO api_keys (name, role, prefix, key_hash, sources)
VALUES ($1, $2, $3, $4, $5::text[])
RETURNING {COLUMNS}
"""

SELECT_KEYS: Final = f"SELECT {COLUMNS} FROM api_keys ORDER BY id"

REVOKE_KEY: Final = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
RETURNING {COLUMNS}
"""

# One statement on the primary: the key (revoked or not, so the caller can say which), and
# `last_used_at` refreshed at most once a minute, so a busy key does not write on every lookup.
FIND_KEY: Final = f"""
WITH found AS (
    SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1
), touched AS (
    UPDATE api_keys k SET last_used_at = now()
    FROM found f
    WHERE k.id = f.id AND f.revoked_at IS NULL
      AND (f.last_used_at IS NULL OR f.last_used_at < now() - interval '1 minute')
)
SELECT {COLUMNS} FROM found
"""


async def create_api_key(
    db: Database, *, name: str, role: str, prefix: str, key_hash: bytes, sources: Sequence[str]
) -> ApiKeyRecord:
    async with db.transaction() as w:
        rows = await w.fetch(INSERT_KEY, name, role, prefix, key_hash, list(sources))
    return ApiKeyRecord.from_row(rows[0])


async def list_api_keys(db: Database) -> list[ApiKeyRecord]:
    async with db.transaction() as w:
        rows = await w.fetch(SELECT_KEYS)
    return [ApiKeyRecord.from_row(r) for r in rows]


async def revoke_api_key(db: Database, key_id: int) -> ApiKeyRecord | None:
    """Revoke the key (idempotent: a revoked key keeps its first revocation time)."""
    async with db.transaction() as w:
        rows = await w.fetch(REVOKE_KEY, key_id)
    return ApiKeyRecord.from_row(rows[0]) if rows else None


async def find_api_key(db: Database, key_hash: bytes) -> ApiKeyRecord | None:
    """The key with this hash (also when revoked), noting that it was used."""
    async with db.transaction() as w:
        rows = await w.fetch(FIND_KEY, key_hash)
    return ApiKeyRecord.from_row(rows[0]) if rows else None
