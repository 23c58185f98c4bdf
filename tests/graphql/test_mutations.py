from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from service.db.pool import Database
from service.ingest.pipeline import ingest_batch
from tests.conftest import GraphQLRunner
from tests.factories import article_input

INGEST = """
mutation($articles: [ArticleInput!]!) {
  ingestArticles(articles: $articles) {
    index status errors { path code message }
    article { id title url canonicalUrl language publishedAtEstimated entities { entity { name } } }
  }
}"""

SOURCE = {"domain": "mutations.example", "name": "Mutation Times"}


async def _ingest(gql: GraphQLRunner, *articles: dict[str, Any]) -> list[dict[str, Any]]:
    data = await gql.data(INGEST, articles=list(articles))
    results: list[dict[str, Any]] = data["ingestArticles"]
    return results


async def test_ingest_creates_then_is_unchanged_then_updates(gql_write: GraphQLRunner) -> None:
    item = article_input(
        url="https://mutations.example/a?utm_source=x",
        source=SOURCE,
        body="<p>Hello <b>world</b></p>",
    )
    [created] = await _ingest(gql_write, item)
    assert created["status"] == "CREATED"
    assert created["article"]["url"] == "https://mutations.example/a"
    [again] = await _ingest(gql_write, item)
    assert (again["status"], again["article"]["id"]) == ("UNCHANGED", created["article"]["id"])
    [edited] = await _ingest(gql_write, dict(item, title="Edited headline"))
    assert (edited["status"], edited["article"]["title"]) == ("UPDATED", "Edited headline")
    body = await gql_write.data(
        "query($id: ID!) { article(id: $id) { body } }", id=created["article"]["id"]
    )
    assert body["article"]["body"] == "Hello world"


async def test_bad_items_are_rejected_alone_with_paths_and_codes(gql_write: GraphQLRunner) -> None:
    results = await _ingest(
        gql_write,
        article_input(source=SOURCE),
        {"url": "https://mutations.example/no-title"},
        article_input(publishedAt="2024-13-45", source=SOURCE),
        article_input(title="x" * 5000, source=SOURCE),
        article_input(publishedAt="2999-01-01T00:00:00Z", source=SOURCE),
    )
    assert [r["status"] for r in results] == [
        "CREATED",
        "REJECTED",
        "REJECTED",
        "REJECTED",
        "REJECTED",
    ]
    assert results[1]["errors"] == [
        {"path": "articles[1].title", "code": "BAD_INPUT", "message": "is required"}
    ]
    assert results[2]["errors"][0]["path"] == "articles[2].publishedAt"
    assert results[3]["errors"][0]["code"] == "LIMIT_EXCEEDED"
    assert "future" in results[4]["errors"][0]["message"]
    assert all(r["article"] is None for r in results[1:])


async def test_too_many_items_is_a_limit(gql_write: GraphQLRunner) -> None:
    small = GraphQLRunner(replace(gql_write.settings, ingest_max_items=2), gql_write.db)
    result = await small(INGEST, articles=[article_input() for _ in range(3)])
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "LIMIT_EXCEEDED"}
    assert "at most 2 items" in result.errors[0].message


async def test_alternate_urls_resolve_to_one_article(gql_write: GraphQLRunner) -> None:
    amp = "https://mutations.example/amp/story"
    canonical = "https://mutations.example/story"
    [first] = await _ingest(
        gql_write, article_input(url=amp, canonicalUrl=canonical, source=SOURCE)
    )
    assert first["article"]["canonicalUrl"] == canonical
    [second] = await _ingest(
        gql_write, article_input(url=amp, title="Via the AMP link", source=SOURCE)
    )
    assert second["status"] == "UPDATED"
    assert second["article"]["id"] == first["article"]["id"]
    for url in (amp, canonical, amp + "?utm_medium=social"):
        found = await gql_write.data("query($u: String) { article(url: $u) { id } }", u=url)
        assert found["article"]["id"] == first["article"]["id"]


async def test_language_is_detected_when_absent(gql_write: GraphQLRunner) -> None:
    results = await _ingest(
        gql_write,
        article_input(
            language=None,
            title="The central bank raised interest rates again on Thursday",
            summary="Markets had expected the decision after inflation stayed high.",
            source=SOURCE,
        ),
        article_input(
            language=None,
            title="Regjeringen vil øke skattene for de rikeste neste år",
            summary="Finansministeren la fram forslaget på en pressekonferanse i Oslo.",
            source=SOURCE,
        ),
        article_input(
            language=None,
            title="Die Regierung will die Steuern im nächsten Jahr erhöhen",
            summary="Der Finanzminister stellte den Vorschlag am Donnerstag in Berlin vor.",
            source=SOURCE,
        ),
    )
    languages = [r["article"]["language"] for r in results]
    assert languages[0] == "en"
    assert languages[1] in {"nb", "nn"}  # both are Norwegian, searched with one configuration
    assert languages[2] == "de"
    # Each is stemmed in its own language: "rate" finds "rates", "skatt" finds "skattene",
    # "Steuer" finds "Steuern".
    source = (await gql_write.data('{ source(domain: "mutations.example") { id } }'))["source"][
        "id"
    ]
    query = "query($s: String, $f: ArticleFilter) { articles(search: $s, filter: $f) { edges { node { title } } } }"
    for text, result in (("rate", results[0]), ("skatt", results[1]), ("Steuer", results[2])):
        found = await gql_write.data(query, s=text, f={"sources": [source]})
        assert [e["node"]["title"] for e in found["articles"]["edges"]] == [
            result["article"]["title"]
        ]


async def test_catalogue_entities_are_linked_from_the_text(gql_write: GraphQLRunner) -> None:
    created = await gql_write.data(
        """mutation { upsertEntities(entities: [
             {name: "Quintessa Varga", kind: PERSON, aliases: ["Varga"], description: "A test person"},
             {name: "Orbital Widgets", kind: ORGANIZATION}]) { id name slug aliases } }"""
    )
    assert [e["name"] for e in created["upsertEntities"]] == ["Quintessa Varga", "Orbital Widgets"]
    [result] = await _ingest(
        gql_write,
        article_input(
            title="Varga takes over at Orbital Widgets",
            summary="Quintessa Varga will lead the company.",
            source=SOURCE,
        ),
    )
    names = {e["entity"]["name"] for e in result["article"]["entities"]}
    assert {"Quintessa Varga", "Orbital Widgets"} <= names


async def test_merged_entities_keep_answering_to_their_old_ids(gql_write: GraphQLRunner) -> None:
    await _ingest(
        gql_write,
        article_input(
            title="one", entities=[{"name": "Merge Keeper", "kind": "PERSON"}], source=SOURCE
        ),
        article_input(
            title="two", entities=[{"name": "Merge Duplicate", "kind": "PERSON"}], source=SOURCE
        ),
        article_input(
            title="three",
            entities=[
                {"name": "Merge Keeper", "kind": "PERSON"},
                {"name": "Merge Duplicate", "kind": "PERSON"},
            ],
            source=SOURCE,
        ),
    )
    ids = await gql_write.data(
        '{ a: entity(slug: "merge-keeper") { id } b: entity(slug: "merge-duplicate") { id } }'
    )
    keep, dup = ids["a"]["id"], ids["b"]["id"]
    merged = await gql_write.data(
        "mutation($into: ID!, $from: [ID!]!) { mergeEntities(into: $into, from: $from) { id aliases articleCount } }",
        into=keep,
        **{"from": [dup]},
    )
    assert merged["mergeEntities"] == {
        "id": keep,
        "aliases": ["Merge Duplicate"],
        "articleCount": 3,
    }
    old = await gql_write.data(
        'query($id: ID!) { node(id: $id) { id } entity(slug: "merge-duplicate") { id } }', id=dup
    )
    assert old == {"node": {"id": keep}, "entity": {"id": keep}}
    missing = await gql_write(
        "mutation($into: ID!, $from: [ID!]!) { mergeEntities(into: $into, from: $from) { id } }",
        into=keep,
        **{"from": ["RW50aXR5Ojk5OTk5OTk5"]},
    )
    assert missing.errors is not None
    assert missing.errors[0].extensions == {"code": "BAD_INPUT"}


async def test_concurrent_overlapping_ingests_make_no_duplicates(db: Database) -> None:
    items = [
        article_input(
            url=f"https://concurrency.example/{i}",
            entities=[{"name": f"Concurrent Entity {i % 7}", "kind": "OTHER"}],
        )
        for i in range(60)
    ]
    batches = [items, list(reversed(items)), items[20:] + items[:20], items[::2] + items[1::2]]
    results = await asyncio.gather(*(ingest_batch(db, batch) for batch in batches))
    assert all(r.status != "REJECTED" for batch in results for r in batch)
    count = await db.fetchval(
        "SELECT count(*) FROM articles WHERE canonical_url LIKE 'https://concurrency.example/%'"
    )
    entities = await db.fetchval(
        "SELECT count(*) FROM entities WHERE slug LIKE 'concurrent-entity-%'"
    )
    assert (count, entities) == (60, 7)
    ids = {r.article_id for batch in results for r in batch}
    assert len(ids) == 60
