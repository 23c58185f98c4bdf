"""Compiled operations answer exactly what the general resolvers answer, on the same data."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from typing import Any

import orjson
import pytest

from service.config import Settings
from service.db import pages
from service.db.pool import Database, track_statements
from service.graphql.compiled import COMPILED, CompiledOperation, compiled_documents
from service.graphql.persisted import load_trusted_documents, sha256_hex
from service.ids import encode_id
from service.resources import operations_dir
from tests.conftest import GraphQLRunner
from tests.support import app_client

OPS = {op.stem: op for op in COMPILED}


def _document(stem: str) -> str:
    return (operations_dir() / f"{stem}.graphql").read_text(encoding="utf-8")


async def _both(
    gql: GraphQLRunner, settings: Settings, db: Database, stem: str, variables: dict[str, Any]
) -> tuple[Any, Any]:
    general = await gql.data(_document(stem), **variables)
    op: CompiledOperation = OPS[stem]
    args = op.prepare(variables, settings)
    assert args is not None, f"{stem} {variables} was not compiled"
    with track_statements() as log:
        fast = orjson.loads(await op.run(db, args))
    assert log.count <= op.statements
    return general, fast


def test_every_compiled_operation_is_pinned_to_its_current_document() -> None:
    # When a document changes, its compiled SQL must change with it (then update the pin).
    trusted = load_trusted_documents()
    assert {op.stem for op, _ in compiled_documents(trusted).values()} == set(OPS), (
        "a compiled operation's document changed: update service/db/pages.py and its sha256"
    )


async def test_feed_pages_are_identical(
    gql: GraphQLRunner, settings: Settings, db: Database
) -> None:
    variables: dict[str, Any] = {}
    pages = 0
    for first in (20, 7):
        after = None
        while True:
            variables = {"first": first, **({"after": after} if after else {})}
            general, fast = await _both(gql, settings, db, "feed", variables)
            assert fast == general
            pages += 1
            info = general["articles"]["pageInfo"]
            if not info["hasNextPage"]:
                assert len(general["articles"]["edges"]) <= first
                break
            after = info["endCursor"]
    assert pages > 10
    general, fast = await _both(gql, settings, db, "feed", {})
    assert fast == general
    general, fast = await _both(gql, settings, db, "feed", {"first": None, "languages": []})
    assert fast == general


async def test_entity_pages_are_identical(
    gql: GraphQLRunner, settings: Settings, db: Database
) -> None:
    slugs = [row["slug"] for row in await db.fetch("SELECT slug FROM entities ORDER BY id")]
    assert len(slugs) > 10
    for slug in [*slugs[:40], " Benjamin-Netanyahu ", "no-such-entity"]:
        variables: dict[str, Any] = {"slug": slug, "first": 3}
        for _ in range(3):
            general, fast = await _both(gql, settings, db, "entity_page", variables)
            assert fast == general, slug
            entity = general["entity"]
            if entity is None or not entity["articles"]["pageInfo"]["hasNextPage"]:
                break
            variables = {**variables, "after": entity["articles"]["pageInfo"]["endCursor"]}
    general, fast = await _both(gql, settings, db, "entity_page", {"slug": slugs[0]})
    assert fast == general


async def test_article_pages_are_identical(
    gql: GraphQLRunner, settings: Settings, db: Database
) -> None:
    ids = [row["id"] for row in await db.fetch("SELECT id FROM articles ORDER BY id")]
    for key in [*ids[:60], ids[-1], 10**12]:
        general, fast = await _both(
            gql, settings, db, "article_page", {"id": encode_id("Article", key)}
        )
        assert fast == general, key
    assert general == {"article": None}


async def test_an_article_with_an_image_authors_and_tags_is_identical(
    gql: GraphQLRunner, settings: Settings, write_db: Database
) -> None:
    runner = GraphQLRunner(settings, write_db)
    article_id = await write_db.fetchval(
        "UPDATE articles SET image_url = 'https://img.example/1.jpg', image_width = 640, "
        "image_credit = 'AP', authors = ARRAY['Å Ø', 'B \"q\"'], tags = ARRAY['x', 'y'], "
        "updated_at = '2026-01-02T03:04:05.000123Z' "
        "WHERE id = (SELECT min(id) FROM articles) RETURNING id"
    )
    general, fast = await _both(
        runner, settings, write_db, "article_page", {"id": encode_id("Article", article_id)}
    )
    assert fast == general
    assert general["article"]["image"]["width"] == 640


async def test_related_stories_of_an_article_with_an_estimated_date_are_identical(
    settings: Settings, write_db: Database
) -> None:
    # An estimated date: no time gaps (null), and the time factor is the neutral middle.
    runner = GraphQLRunner(settings, write_db)
    article_id = await write_db.fetchval(
        "UPDATE article_signals SET dated = false "
        "WHERE article_id = (SELECT min(article_id) FROM article_signals) RETURNING article_id"
    )
    general, fast = await _both(
        runner, settings, write_db, "article_page", {"id": encode_id("Article", article_id)}
    )
    assert fast == general
    related = general["article"]["relatedStories"]
    assert related
    assert all(r["reasons"]["timeGapHours"] is None for r in related)
    assert any(r["reasons"]["sharedEntities"] for r in related)


@pytest.mark.parametrize(
    ("stem", "variables"),
    [
        ("feed", {"first": 0}),
        ("feed", {"first": 101}),
        ("feed", {"first": "3"}),
        ("feed", {"after": "not-a-cursor"}),
        ("feed", {"languages": ["nb"]}),
        ("feed", {"other": 1}),
        ("entity_page", {"first": 3}),
        ("entity_page", {"slug": None}),
        ("entity_page", {"slug": "x", "after": encode_id("Article", 1)}),
        ("article_page", {"id": encode_id("Source", 1)}),
        ("article_page", {"id": "???"}),
        ("article_page", {}),
    ],
)
def test_anything_unusual_is_left_to_the_general_path(
    settings: Settings, stem: str, variables: dict[str, Any]
) -> None:
    assert OPS[stem].prepare(variables, settings) is None


async def _post(http: Any, body: dict[str, Any]) -> Any:
    return await http.post("/graphql", json=body)


async def test_over_http_a_compiled_page_is_one_statement_with_the_same_answer(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    document = _document("feed")
    answers = {}
    for compiled in (True, False):
        async with app_client(replace(settings, compiled_operations=compiled), db) as http:
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="newsgraph.access"):
                response = await _post(http, {"query": document, "variables": {"first": 4}})
            assert response.status_code == 200
            (line,) = [r for r in caplog.records if r.name == "newsgraph.access"]
            assert line.operation == "Feed"  # type: ignore[attr-defined]
            answers[compiled] = (response.json(), line.sql_statements)  # type: ignore[attr-defined]
    (fast, fast_count), (general, general_count) = answers[True], answers[False]
    assert fast == general
    assert fast_count == 1 < general_count
    assert fast["extensions"]["cost"]["requested"] == 6


async def test_over_http_errors_and_persisted_hashes_behave_as_before(
    settings: Settings, db: Database
) -> None:
    document = _document("entity_page")
    digest = sha256_hex(document)
    async with app_client(settings, db) as http:
        bad = await _post(
            http, {"query": document, "variables": {"slug": "benjamin-netanyahu", "after": "zz"}}
        )
        assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_CURSOR"
        by_hash = await http.get(
            "/graphql",
            params={
                "extensions": orjson.dumps(
                    {"persistedQuery": {"version": 1, "sha256Hash": digest}}
                ).decode(),
                "variables": '{"slug": "benjamin-netanyahu", "first": 2}',
            },
        )
        assert by_hash.status_code == 200
        assert by_hash.headers["cache-control"] == "public, max-age=120"
        assert by_hash.json()["data"]["entity"]["slug"] == "benjamin-netanyahu"
        again = await http.get(
            str(by_hash.request.url), headers={"if-none-match": by_hash.headers["etag"]}
        )
        assert again.status_code == 304
        wrong_name = await _post(
            http, {"query": document, "operationName": "Nope", "variables": {"slug": "x"}}
        )
        assert wrong_name.status_code == 400  # strawberry's answer: no such operation


async def test_a_compiled_document_over_a_configured_limit_is_refused_as_before(
    settings: Settings, db: Database
) -> None:
    shallow = replace(settings, max_query_depth=3)
    async with app_client(shallow, db) as http:
        answer = await _post(http, {"query": _document("feed"), "variables": {"first": 2}})
    assert answer.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


async def test_saliences_are_rounded_as_python_rounds(db: Database) -> None:
    # round(salience, 4) in float8 arithmetic (service.db.pages, service.db.entities).
    rng = random.Random(7)
    saliences = [
        0.0,
        1.0,
        0.30125,
        0.123456,
        0.99995,
        0.00005,
        *(rng.random() for _ in range(5000)),
    ]
    rows = await db.fetch(
        f"SELECT s::float8 AS exact, {pages._salience('s')} AS rounded "
        "FROM unnest($1::real[]) AS x(s)",
        saliences,
    )
    assert all(row["rounded"] == round(row["exact"], 4) for row in rows)


async def test_times_with_fractions_and_fine_saliences_are_identical(
    settings: Settings, write_db: Database
) -> None:
    runner = GraphQLRunner(settings, write_db)
    article_id = await write_db.fetchval(
        "UPDATE articles SET published_at = '2030-01-02T03:04:05.120000Z' "
        "WHERE id = (SELECT min(article_id) FROM article_entities) RETURNING id"
    )
    await write_db.fetchval(
        "UPDATE article_entities SET published_at = '2030-01-02T03:04:05.120000Z', "
        "salience = (ARRAY[0.30125, 0.123456, 1, 0.99995])[1 + entity_id % 4] "
        "WHERE article_id = $1",
        article_id,
    )
    general, fast = await _both(runner, settings, write_db, "feed", {"first": 3})
    assert fast == general
    first = general["articles"]["edges"][0]
    assert first["node"]["publishedAt"] == "2030-01-02T03:04:05.120000+00:00"
    assert first["node"]["entities"]
    general, fast = await _both(
        runner, settings, write_db, "article_page", {"id": encode_id("Article", article_id)}
    )
    assert fast == general
    slug = await write_db.fetchval(
        "SELECT e.slug FROM article_entities l JOIN entities e ON e.id = l.entity_id "
        "WHERE l.article_id = $1 LIMIT 1",
        article_id,
    )
    general, fast = await _both(
        runner, settings, write_db, "entity_page", {"slug": slug, "first": 2}
    )
    assert fast == general
