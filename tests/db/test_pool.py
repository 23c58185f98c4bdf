"""Pool connections: released without a reset, and in the plan mode each statement needs."""

from __future__ import annotations

from dataclasses import replace

from service.config import Settings
from service.db.pool import open_database

MODE = "SELECT current_setting('plan_cache_mode')"


async def test_compiled_pages_may_use_generic_plans_and_other_statements_never(
    settings: Settings,
) -> None:
    one = replace(settings, pool_min_size=1, pool_max_size=1)  # always the same connection
    async with open_database(one) as db:
        assert await db.fetchval(MODE) == "force_custom_plan"
        assert await db.fetchval_planned(MODE) == "auto"
        assert await db.fetchval_planned(MODE) == "auto"  # kept across releases
        assert await db.fetchval(MODE) == "force_custom_plan"
        await db.fetchval_planned(MODE)
        async with db.transaction() as tx:
            assert await tx.fetchval(MODE) == "force_custom_plan"
