from __future__ import annotations

from service.db.counters import fold_counts
from service.db.pool import Database
from service.ingest.pipeline import ingest_batch, load_catalogue
from tests.factories import article_input


async def test_reingest_is_unchanged_and_an_edit_updates_without_duplicating(
    write_db: Database,
) -> None:
    item = article_input(url="https://factory.example/a?utm_source=feed")
    [first] = await ingest_batch(write_db, [item])
    assert first.status == "CREATED"
    [again] = await ingest_batch(write_db, [dict(item, url="https://FACTORY.example/a/#top")])
    assert (again.status, again.article_id) == ("UNCHANGED", first.article_id)
    [edited] = await ingest_batch(write_db, [dict(item, title="A better headline")])
    assert (edited.status, edited.article_id) == ("UPDATED", first.article_id)
    count = await write_db.fetchval(
        "SELECT count(*) FROM articles WHERE canonical_url = 'https://factory.example/a'"
    )
    title = await write_db.fetchval("SELECT title FROM articles WHERE id = $1", first.article_id)
    assert (count, title) == (1, "A better headline")


async def test_invalid_items_are_rejected_alone_with_paths(write_db: Database) -> None:
    results = await ingest_batch(
        write_db,
        [
            article_input(),
            {"url": "ftp://nope", "title": ""},
            article_input(publishedAt="last tuesday"),
            "not an object",
        ],
    )
    assert [r.status for r in results] == ["CREATED", "REJECTED", "REJECTED", "REJECTED"]
    assert {e.path for e in results[1].errors} == {"articles[1].url", "articles[1].title"}
    assert results[2].errors[0].path == "articles[2].publishedAt"
    assert "RFC 3339" in results[2].errors[0].message
    assert results[3].errors[0].path == "articles[3]"


async def test_repeats_in_one_batch_are_stored_once(write_db: Database) -> None:
    item = article_input()
    results = await ingest_batch(write_db, [item, dict(item, title="Later copy")])
    assert results[0].article_id == results[1].article_id
    assert (
        await write_db.fetchval("SELECT title FROM articles WHERE id = $1", results[0].article_id)
        == "Later copy"
    )


async def test_missing_date_is_the_ingest_time_flagged_estimated(write_db: Database) -> None:
    [result] = await ingest_batch(write_db, [article_input(publishedAt=None)])
    row = await write_db.fetchrow(
        "SELECT published_at_estimated, now() - published_at < interval '1 minute' AS recent "
        "FROM articles WHERE id = $1",
        result.article_id,
    )
    assert row is not None
    assert (row["published_at_estimated"], row["recent"]) == (True, True)


async def test_entities_link_by_wikidata_id_name_or_alias_and_counters_follow(
    write_db: Database,
) -> None:
    [entity_id] = await load_catalogue(
        write_db,
        [
            {
                "name": "Testa Personsen",
                "kind": "PERSON",
                "wikidataId": "Q99999991",
                "aliases": ["T. P."],
            }
        ],
    )
    results = await ingest_batch(
        write_db,
        [
            article_input(
                entities=[{"name": "Testa Personsen", "kind": "PERSON", "salience": 0.9}]
            ),
            article_input(entities=[{"name": "t. p.", "kind": "PERSON", "salience": 0.4}]),
            article_input(
                entities=[{"name": "Someone", "kind": "PERSON", "wikidataId": "Q99999991"}]
            ),
        ],
    )
    linked = await write_db.fetch(
        "SELECT article_id FROM article_entities WHERE entity_id = $1 ORDER BY article_id",
        entity_id,
    )
    assert [r["article_id"] for r in linked] == [r.article_id for r in results]
    await fold_counts(write_db)  # counters follow writes by a fold (service.db.counters)
    assert (
        await write_db.fetchval("SELECT article_count FROM entities WHERE id = $1", entity_id) == 3
    )
    source_count = await write_db.fetchval(
        "SELECT article_count FROM sources WHERE domain = 'factory.example'"
    )
    assert source_count >= 3


async def test_unknown_entities_are_created_and_links_replaced_on_update(
    write_db: Database,
) -> None:
    item = article_input(
        entities=[{"name": "Brand New Org", "kind": "ORGANIZATION", "salience": 0.7}]
    )
    [created] = await ingest_batch(write_db, [item])
    entity_id = await write_db.fetchval("SELECT id FROM entities WHERE slug = 'brand-new-org'")
    assert entity_id is not None
    [updated] = await ingest_batch(write_db, [dict(item, entities=[], title="No entities now")])
    assert updated.status == "UPDATED"
    assert (
        await write_db.fetchval(
            "SELECT count(*) FROM article_entities WHERE article_id = $1", created.article_id
        )
        == 0
    )
    await fold_counts(write_db)
    assert (
        await write_db.fetchval("SELECT article_count FROM entities WHERE id = $1", entity_id) == 0
    )


async def test_a_new_date_moves_the_article_in_entity_feeds(write_db: Database) -> None:
    item = article_input(entities=[{"name": "Dated Thing", "kind": "OTHER", "salience": 0.5}])
    [result] = await ingest_batch(write_db, [item])
    await ingest_batch(write_db, [dict(item, publishedAt="2026-06-01T00:00:00Z")])
    link_time = await write_db.fetchval(
        "SELECT published_at = '2026-06-01T00:00:00Z' FROM article_entities WHERE article_id = $1",
        result.article_id,
    )
    assert link_time is True
