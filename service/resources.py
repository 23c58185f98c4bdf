"""Files that ship with the service: migrations and the GraphQL contract.

In a checkout they are the top-level `migrations/` and `schema/` folders; in an installed
wheel, the build maps the same folders into the package (`service.migrations`,
`service.contract`), so `newsgraph serve|migrate` work from either.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["migrations_dir", "operations_dir", "schema_dir"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def _locate(checkout_name: str, package: str) -> Path:
    checkout = _CHECKOUT / checkout_name
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files(package)))


def migrations_dir() -> Path:
    """The alembic script location."""
    return _locate("migrations", "service.migrations")


def schema_dir() -> Path:
    """The folder holding schema.graphql, released.graphql and operations/."""
    return _locate("schema", "service.contract")


def operations_dir() -> Path:
    """The persisted operations (schema/operations/*.graphql)."""
    return schema_dir() / "operations"
