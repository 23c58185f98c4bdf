"""Files that ship with the service: migrations and the GraphQL contract.

In a checkout they are the top-level `migrations/` and `schema/` folders. A wheel carries the
same folders inside the package (`service/migrations`, `service/contract`; see
pyproject.toml), so `newsgraph serve|migrate` work from either.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["migrations_dir", "operations_dir", "schema_dir"]

_PACKAGE = Path(__file__).resolve().parent


def _locate(packaged: str, checkout: str) -> Path:
    installed = _PACKAGE / packaged
    return installed if installed.is_dir() else _PACKAGE.parent / checkout


def migrations_dir() -> Path:
    """The alembic script location."""
    return _locate("migrations", "migrations")


def schema_dir() -> Path:
    """The folder holding schema.graphql, released.graphql and operations/."""
    return _locate("contract", "schema")


def operations_dir() -> Path:
    """The persisted operations (schema/operations/*.graphql)."""
    return schema_dir() / "operations"
