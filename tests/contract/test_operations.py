"""Golden tests of the persisted operations: their results and the SQL they run.

Each `schema/operations/<name>.graphql` runs against the demo data; its result must equal
`golden/<name>.json` and its distinct statements `golden/<name>.sql`, so a change in either (an N+1
regression shows as new statements) is visible in review. `UPDATE_SNAPSHOTS=1` rewrites them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from graphql import build_schema as parse_sdl
from graphql import parse, validate

from service.config import Settings
from service.db.pool import Database, track_statements
from service.graphql import export_sdl
from service.graphql.compiled import COMPILED, CompiledOperation
from service.resources import operations_dir
from tests.conftest import GraphQLRunner

GOLDEN = Path(__file__).parent / "golden"
OPERATIONS = sorted(operations_dir().glob("*.graphql"))
VARIABLES: dict[str, dict[str, Any]] = {
    "article_page": {"id": "QXJ0aWNsZTox"},  # the first demo article
    "autocomplete": {"text": "jo"},
    "entity_page": {"slug": "benjamin-netanyahu", "first": 5},
    "feed": {"first": 5},
    "search": {"text": "ceasefire", "first": 5},
    "source_page": {"domain": "nrk.no", "first": 5},
}
# Values that change with every load of the data (ingest times) are not part of the contract.
VOLATILE = {"updatedAt"}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<volatile>" if k in VOLATILE else _stable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def test_every_operation_has_variables() -> None:
    assert {path.stem for path in OPERATIONS} == set(VARIABLES)


@pytest.mark.parametrize("path", OPERATIONS, ids=lambda p: p.stem)
async def test_operation_matches_its_golden_result_and_sql(gql: GraphQLRunner, path: Path) -> None:
    document = path.read_text(encoding="utf-8")
    assert validate(parse_sdl(export_sdl()), parse(document)) == []
    with track_statements(record=True) as log:
        data = await gql.data(document, **VARIABLES[path.stem])
    result = orjson.dumps(_stable(data), option=orjson.OPT_INDENT_2).decode() + "\n"
    # Independent branches of a query reach a loader at different moments, so the same
    # statement may run once or twice and in any order: compare the distinct texts, sorted.
    # (tests/graphql/test_loaders.py bounds the counts.)
    sql = "\n;\n".join(sorted({statement.strip() for statement in log.statements})) + "\n"
    json_file, sql_file = GOLDEN / f"{path.stem}.json", GOLDEN / f"{path.stem}.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        json_file.write_text(result, encoding="utf-8")
        sql_file.write_text(sql, encoding="utf-8")
    assert result == json_file.read_text(encoding="utf-8")
    assert sql == sql_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("op", COMPILED, ids=lambda op: op.stem)
async def test_compiled_operation_matches_its_golden_result_and_sql(
    demo_db: tuple[Settings, Database], op: CompiledOperation
) -> None:
    settings, db = demo_db  # the golden database: nothing other tests commit shows up
    # The statements of the fast path (service.graphql.compiled), next to the general SQL:
    # one per page, after relatedStories' two on the article page.
    args = op.prepare(VARIABLES[op.stem], settings)
    assert args is not None
    with track_statements(record=True) as log:
        data = orjson.loads(await op.run(db, args))
    result = orjson.dumps(_stable(data), option=orjson.OPT_INDENT_2).decode() + "\n"
    assert result == (GOLDEN / f"{op.stem}.json").read_text(encoding="utf-8")
    sql = "\n;\n".join(statement.strip() for statement in log.statements) + "\n"
    sql_file = GOLDEN / f"{op.stem}.compiled.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        sql_file.write_text(sql, encoding="utf-8")
    assert sql == sql_file.read_text(encoding="utf-8")
