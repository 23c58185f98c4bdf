"""Related lists remember what their ranking saw, so the cascade skips lists already up to date.

The refresher's cascade (service/related/lists.py) queues the lists an article may enter or
leave after it changed. A list ranked after that change was committed already accounts for
it; queuing it again made a backfill re-rank most lists several times (200k articles: over
a million log rows). So each log row keeps the id of the transaction that wrote it
(`xid`), each list the snapshot its ranking started from (`snapshot`), and the cascade
skips a list whose snapshot sees every change it would be queued for
(`pg_visible_in_snapshot`): exact, with no clocks. Rows and lists from before this revision
have no snapshot and cascade as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE related_refresh ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    op.execute("ALTER TABLE related_lists ADD COLUMN snapshot pg_snapshot")


def downgrade() -> None:
    op.execute("ALTER TABLE related_lists DROP COLUMN snapshot")
    op.execute("ALTER TABLE related_refresh DROP COLUMN xid")
