"""Liveness and readiness: `/healthz` says the process runs, `/readyz` that it can serve."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.db import related_queue
from service.db.migrate import head_revision
from service.db.pool import Database
from service.errors import ServiceUnavailable

__all__ = ["healthz", "readyz"]

SELECT_REVISION = "SELECT version_num FROM alembic_version"
READY_TIMEOUT = 2.0
QUEUE_TIMEOUT = 0.5


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    db: Database = request.state.db
    expected = head_revision()
    try:
        current = await asyncio.wait_for(db.fetchval(SELECT_REVISION), READY_TIMEOUT)
    except (ServiceUnavailable, TimeoutError):
        return _unready("the database does not answer")
    except Exception:  # an unmigrated database has no alembic_version table
        return _unready("the database has no schema; run `newsgraph migrate`")
    if current != expected:
        return _unready(
            f"the schema is at {current}, the code expects {expected}; run `newsgraph migrate`"
        )
    answer: dict[str, object] = {"status": "ready", "schema": current}
    # The related-stories backlog, wherever indexing runs (this process, the indexer process,
    # another deployment): information, never unreadiness; left out when counting is slow.
    with contextlib.suppress(ServiceUnavailable, TimeoutError):
        answer["relatedQueue"] = await asyncio.wait_for(
            related_queue.queue_depth(db), QUEUE_TIMEOUT
        )
    return JSONResponse(answer)


def _unready(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
