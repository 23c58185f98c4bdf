"""Schema migrations through alembic, callable from the CLI, the app and tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.resources import migrations_dir

__all__ = ["alembic_config", "downgrade", "head_revision", "upgrade"]


def alembic_config(dsn: str) -> Config:
    """An alembic Config for our script location and `dsn` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["dsn"] = dsn
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    """Upgrade to `revision` under an advisory lock; blocking (runs its own event loop)."""
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def head_revision() -> str:
    """The revision the code expects the database to be at."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head
