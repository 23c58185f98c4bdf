"""Pool connections: released without a reset, and in the plan mode each statement needs."""

from __future__ import annotations

import asyncio
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


async def test_connections_are_lent_first_come_first_served(settings: Settings) -> None:
    # A request arriving just as a connection is released must queue behind those already
    # waiting (asyncpg's queue lets it take the connection, and the waiter it had woken goes
    # to the back of the line: the p99 of page queries under load).
    one = replace(settings, pool_min_size=1, pool_max_size=1)
    order: list[str] = []
    async with open_database(one) as db:

        async def request(name: str, *, late: bool = False) -> None:
            if late:
                await asyncio.sleep(0)  # one more turn of the loop: it lands in the release
            await db.fetchval("SELECT 1")
            order.append(name)

        async with db._connection(write=False):  # the only connection, busy
            waiting = [asyncio.create_task(request(f"waiting{i}")) for i in range(3)]
            await asyncio.sleep(0.05)
            newcomer = asyncio.create_task(request("newcomer", late=True))
        await asyncio.gather(*waiting, newcomer)
    assert order == ["waiting0", "waiting1", "waiting2", "newcomer"]
