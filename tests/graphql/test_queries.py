from __future__ import annotations

from typing import Any

import pytest

from service.db.counters import fold_counts
from service.db.pool import Database
from service.ingest.pipeline import ingest_batch, load_catalogue
from tests.conftest import GraphQLRunner
from tests.factories import article_input

SOURCE = {"domain": "queries.example", "name": "Queries Daily", "country": "GB"}

ARTICLE = """
query($id: ID, $url: String) {
  article(id: $id, url: $url) {
    id title url canonicalUrl publishedAt publishedAtEstimated language section tags
    authors { name } image { url credit } body
    source { id name domain }
    entities { salience mentionCount entity { name slug kind aliases } }
  }
}"""

LIST = """
query($filter: ArticleFilter, $search: String, $orderBy: ArticleOrder! = NEWEST, $first: Int, $after: String) {
  articles(filter: $filter, search: $search, orderBy: $orderBy, first: $first, after: $after) {
    totalCount totalCountIsExact
    edges { cursor node { id title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def _ingest(db: Database, *items: dict[str, Any]) -> list[int]:
    results = await ingest_batch(db, list(items))
    assert all(r.article_id for r in results), results
    return [r.article_id for r in results if r.article_id is not None]


async def _titles(gql: GraphQLRunner, **variables: Any) -> list[str]:
    data = await gql.data(LIST, **variables)
    return [edge["node"]["title"] for edge in data["articles"]["edges"]]


async def _source_id(gql: GraphQLRunner, domain: str = "queries.example") -> str:
    data = await gql.data("query($d: String) { source(domain: $d) { id } }", d=domain)
    return str(data["source"]["id"])


async def test_article_by_id_and_by_any_form_of_its_url(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await load_catalogue(write_db, [{"name": "Ada Lovelace", "kind": "PERSON", "aliases": ["Ada"]}])
    await _ingest(
        write_db,
        article_input(
            url="https://queries.example/tech/engine?utm_campaign=x",
            title="The analytical engine",
            body="A long body.",
            authors=["Demo Desk"],
            tags=["history"],
            source=SOURCE,
            entities=[{"name": "Ada Lovelace", "kind": "PERSON", "salience": 0.9}],
        ),
    )
    by_url = (await gql_write.data(ARTICLE, url="HTTPS://queries.example/tech/engine/#top"))[
        "article"
    ]
    assert by_url["title"] == "The analytical engine"
    assert by_url["canonicalUrl"] == "https://queries.example/tech/engine"
    assert by_url["authors"] == [{"name": "Demo Desk"}]
    assert by_url["body"] == "A long body."
    assert by_url["source"]["name"] == "Queries Daily"
    assert by_url["entities"] == [
        {
            "salience": 0.9,
            "mentionCount": 1,
            "entity": {
                "name": "Ada Lovelace",
                "slug": "ada-lovelace",
                "kind": "PERSON",
                "aliases": ["Ada"],
            },
        }
    ]
    by_id = (await gql_write.data(ARTICLE, id=by_url["id"]))["article"]
    assert by_id == by_url
    node = await gql_write.data(
        "query($id: ID!) { node(id: $id) { id ... on Article { title } } }", id=by_url["id"]
    )
    assert node["node"] == {"id": by_url["id"], "title": "The analytical engine"}


async def test_unknown_ids_and_urls_are_null(gql: GraphQLRunner) -> None:
    data = await gql.data(
        'query { a: article(id: "QXJ0aWNsZTo5OTk5OTk5") { id } '
        'b: article(url: "https://nowhere.example/x") { id } '
        'c: entity(slug: "no-such-thing") { id } d: source(domain: "nowhere.example") { id } '
        'e: node(id: "RW50aXR5Ojk5OTk5OTk") { id } }'
    )
    assert data == {"a": None, "b": None, "c": None, "d": None, "e": None}


async def test_filters_narrow_by_source_language_section_and_date(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await _ingest(
        write_db,
        article_input(
            title="en world jan",
            language="en",
            section="world",
            publishedAt="2025-01-01T00:00:00Z",
            source=SOURCE,
        ),
        article_input(
            title="nb world feb",
            language="nb",
            section="world",
            publishedAt="2025-02-01T00:00:00Z",
            source=SOURCE,
        ),
        article_input(
            title="en sport mar",
            language="en",
            section="sport",
            publishedAt="2025-03-01T00:00:00Z",
            source=SOURCE,
        ),
        article_input(
            title="elsewhere", language="en", section="world", publishedAt="2025-03-02T00:00:00Z"
        ),
    )
    mine = {"sources": [await _source_id(gql_write)]}
    assert await _titles(gql_write, filter=mine) == ["en sport mar", "nb world feb", "en world jan"]
    assert await _titles(gql_write, filter={**mine, "languages": ["NB"]}) == ["nb world feb"]
    assert await _titles(gql_write, filter={**mine, "sections": ["world"]}) == [
        "nb world feb",
        "en world jan",
    ]
    window = {"publishedAfter": "2025-01-15T00:00:00Z", "publishedBefore": "2025-03-01T00:00:00Z"}
    assert await _titles(gql_write, filter={**mine, **window}) == ["nb world feb"]
    assert await _titles(gql_write, filter=mine, orderBy="OLDEST") == [
        "en world jan",
        "nb world feb",
        "en sport mar",
    ]


async def test_entity_filter_finds_articles_mentioning_any_of_them(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await _ingest(
        write_db,
        article_input(
            title="about a",
            entities=[{"name": "Entity Alpha", "kind": "OTHER"}],
            publishedAt="2025-05-01T00:00:00Z",
        ),
        article_input(
            title="about b",
            entities=[{"name": "Entity Beta", "kind": "OTHER"}],
            publishedAt="2025-05-02T00:00:00Z",
        ),
        article_input(
            title="about both",
            entities=[
                {"name": "Entity Alpha", "kind": "OTHER"},
                {"name": "Entity Beta", "kind": "OTHER"},
            ],
            publishedAt="2025-05-03T00:00:00Z",
        ),
    )
    ids = await gql_write.data(
        '{ a: entity(slug: "entity-alpha") { id } b: entity(slug: "entity-beta") { id } }'
    )
    a, b = ids["a"]["id"], ids["b"]["id"]
    assert await _titles(gql_write, filter={"entities": [a]}) == ["about both", "about a"]
    assert await _titles(gql_write, filter={"entities": [a, b]}) == [
        "about both",
        "about b",
        "about a",
    ]
    data = await gql_write.data(LIST, filter={"entities": [a, b]}, first=2)
    assert data["articles"]["totalCount"] == 3
    rest = await _titles(
        gql_write, filter={"entities": [a, b]}, after=data["articles"]["pageInfo"]["endCursor"]
    )
    assert rest == ["about a"]


async def test_cursors_stay_valid_while_new_articles_arrive(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await _ingest(
        write_db,
        *[
            article_input(
                title=f"story {i}", publishedAt=f"2025-06-{i + 1:02d}T00:00:00Z", source=SOURCE
            )
            for i in range(5)
        ],
    )
    mine = {"sources": [await _source_id(gql_write)]}
    first_page = await gql_write.data(LIST, filter=mine, first=2)
    conn = first_page["articles"]
    assert [e["node"]["title"] for e in conn["edges"]] == ["story 4", "story 3"]
    assert conn["pageInfo"]["hasNextPage"] is True
    assert conn["pageInfo"]["hasPreviousPage"] is False
    await _ingest(
        write_db, article_input(title="breaking", publishedAt="2025-07-01T00:00:00Z", source=SOURCE)
    )
    rest = await _titles(gql_write, filter=mine, first=100, after=conn["pageInfo"]["endCursor"])
    assert rest == ["story 2", "story 1", "story 0"]
    last = await gql_write.data(LIST, filter=mine, first=3, after=conn["pageInfo"]["endCursor"])
    assert last["articles"]["pageInfo"]["hasNextPage"] is False


async def test_search_stems_each_language_and_honours_exclusions(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await _ingest(
        write_db,
        article_input(
            title="Voters head to the polls in tight elections", language="en", source=SOURCE
        ),
        article_input(title="Ceasefire talks stall over hostages", language="en", source=SOURCE),
        article_input(title="Ceasefire holds in the north", language="en", source=SOURCE),
        article_input(
            title="Regjeringen la fram statsbudsjettet",
            summary="Budsjettene blir strammere.",
            language="nb",
            source=SOURCE,
        ),
        article_input(title="Valgene i Europa", language="nb", source=SOURCE),
    )
    mine = {"sources": [await _source_id(gql_write)]}
    assert await _titles(gql_write, filter=mine, search="election") == [
        "Voters head to the polls in tight elections"
    ]
    assert await _titles(gql_write, filter=mine, search="budsjettet") == [
        "Regjeringen la fram statsbudsjettet"
    ]
    assert await _titles(gql_write, filter=mine, search="valg") == ["Valgene i Europa"]
    assert await _titles(gql_write, filter=mine, search="ceasefire -hostages") == [
        "Ceasefire holds in the north"
    ]
    assert await _titles(gql_write, filter=mine, search='"talks stall"') == [
        "Ceasefire talks stall over hostages"
    ]
    either = await _titles(gql_write, filter=mine, search="hostages OR valgene")
    assert sorted(either) == ["Ceasefire talks stall over hostages", "Valgene i Europa"]


async def test_relevance_ranks_best_matches_first_and_pages_by_rank(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await _ingest(
        write_db,
        article_input(
            title="Solar power",
            summary="Nothing else here.",
            source=SOURCE,
            publishedAt="2025-01-03T00:00:00Z",
        ),
        article_input(
            title="Solar solar power surges",
            summary="Solar farms and solar panels.",
            source=SOURCE,
            publishedAt="2025-01-01T00:00:00Z",
        ),
        article_input(
            title="Wind power",
            summary="A mention of solar in passing.",
            source=SOURCE,
            publishedAt="2025-01-02T00:00:00Z",
        ),
    )
    mine = {"sources": [await _source_id(gql_write)]}
    ranked = await _titles(gql_write, filter=mine, search="solar", orderBy="RELEVANCE")
    assert ranked[0] == "Solar solar power surges"
    assert ranked[-1] == "Wind power"
    page = await gql_write.data(LIST, filter=mine, search="solar", orderBy="RELEVANCE", first=1)
    cursor = page["articles"]["pageInfo"]["endCursor"]
    rest = await _titles(gql_write, filter=mine, search="solar", orderBy="RELEVANCE", after=cursor)
    assert rest == ranked[1:]


async def test_entities_autocomplete_over_names_and_aliases(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    await load_catalogue(
        write_db,
        [
            {"name": "Zyxwa Qorton", "kind": "PERSON", "aliases": ["Zyx Q"]},
            {"name": "Qorton Zyxwa Foundation", "kind": "ORGANIZATION"},
            {"name": "Ølberg Zyxwa", "kind": "PLACE", "aliases": ["Olberg"]},
        ],
    )
    query = """query($s: String, $k: EntityKind) { entities(search: $s, kind: $k) { edges { node { name } } } }"""

    async def names(**variables: Any) -> list[str]:
        data = await gql_write.data(query, **variables)
        return [e["node"]["name"] for e in data["entities"]["edges"]]

    assert (await names(s="zyxw"))[0] == "Zyxwa Qorton"  # a name starting with it first
    assert set(await names(s="zyxw")) == {"Zyxwa Qorton", "Qorton Zyxwa Foundation", "Ølberg Zyxwa"}
    assert await names(s="zyxw", k="PLACE") == ["Ølberg Zyxwa"]
    assert await names(s="olberg") == ["Ølberg Zyxwa"]  # through the alias
    assert await names(s="QORTON Z") == ["Qorton Zyxwa Foundation"]
    assert "Zyxwa Qorton" in await names(s="zy")  # short texts match prefixes
    assert await names(s="50%_off") == []


async def test_entity_and_source_pages_list_their_articles_and_co_mentions(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    people = [
        {"name": "Pat Example", "kind": "PERSON"},
        {"name": "Sam Example", "kind": "PERSON"},
        {"name": "Lee Example", "kind": "PERSON"},
    ]
    await _ingest(
        write_db,
        article_input(
            title="one", entities=people[:2], source=SOURCE, publishedAt="2025-01-01T00:00:00Z"
        ),
        article_input(
            title="two", entities=people[:2], source=SOURCE, publishedAt="2025-01-02T00:00:00Z"
        ),
        article_input(
            title="three", entities=people, source=SOURCE, publishedAt="2025-01-03T00:00:00Z"
        ),
    )
    await fold_counts(write_db)  # the counts of the pages follow writes by a fold
    data = await gql_write.data(
        """{ entity(slug: "pat-example") { name articleCount
               coMentioned(first: 5) { count entity { name } }
               articles(first: 2) { totalCount totalCountIsExact edges { node { title } } } }
             source(domain: "queries.example") { articles(first: 10) { totalCount edges { node { title } } } } }"""
    )
    entity = data["entity"]
    assert entity["articleCount"] == 3
    assert entity["coMentioned"] == [
        {"count": 3, "entity": {"name": "Sam Example"}},
        {"count": 1, "entity": {"name": "Lee Example"}},
    ]
    assert [e["node"]["title"] for e in entity["articles"]["edges"]] == ["three", "two"]
    assert (entity["articles"]["totalCount"], entity["articles"]["totalCountIsExact"]) == (3, True)
    assert data["source"]["articles"]["totalCount"] == 3


async def test_sources_list_by_name_and_search(gql: GraphQLRunner) -> None:
    data = await gql.data("{ sources(first: 100) { edges { node { name domain } } } }")
    names = [e["node"]["name"] for e in data["sources"]["edges"]]
    assert names == sorted(names)
    assert len(names) >= 5
    domain = data["sources"]["edges"][0]["node"]["domain"]
    found = await gql.data(
        "query($s: String) { sources(search: $s) { edges { node { domain } } } }", s=domain[:4]
    )
    assert domain in [e["node"]["domain"] for e in found["sources"]["edges"]]


async def test_counts_beyond_the_cap_are_estimates(gql: GraphQLRunner, db: Database) -> None:
    from dataclasses import replace

    small = GraphQLRunner(replace(gql.settings, count_cap=5), db)
    query = '{ articles(first: 1, filter: {languages: ["en"]}) { totalCount totalCountIsExact } }'
    data = await small.data(query)
    assert data["articles"]["totalCountIsExact"] is False
    assert data["articles"]["totalCount"] > 5
    exact = await gql.data(query)
    assert exact["articles"]["totalCountIsExact"] is True


async def test_the_count_of_all_articles_is_exact_from_the_counters(
    gql: GraphQLRunner, db: Database
) -> None:
    from dataclasses import replace

    small = GraphQLRunner(replace(gql.settings, count_cap=5), db)
    await fold_counts(db)  # what other tests committed is counted once folded
    data = await small.data("{ articles(first: 1) { totalCount totalCountIsExact } }")
    assert data["articles"] == {
        "totalCount": await db.fetchval("SELECT count(*) FROM articles"),
        "totalCountIsExact": True,
    }


async def test_relevance_ranks_only_the_newest_matches(
    gql_write: GraphQLRunner, write_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.db import articles

    await _ingest(
        write_db,
        article_input(
            title="Quokka quokka quokka quokka", source=SOURCE, publishedAt="2025-01-01T00:00:00Z"
        ),
        article_input(title="Quokka seen", source=SOURCE, publishedAt="2025-01-02T00:00:00Z"),
        article_input(title="Quokka again", source=SOURCE, publishedAt="2025-01-03T00:00:00Z"),
    )
    mine = {"sources": [await _source_id(gql_write)]}
    ranked = await _titles(gql_write, filter=mine, search="quokka", orderBy="RELEVANCE")
    assert ranked[0] == "Quokka quokka quokka quokka"
    monkeypatch.setattr(articles, "RELEVANCE_WINDOW", 2)
    window = await _titles(gql_write, filter=mine, search="quokka", orderBy="RELEVANCE")
    assert sorted(window) == ["Quokka again", "Quokka seen"]


async def test_search_counts_far_beyond_the_cap_are_estimated_without_counting(
    gql: GraphQLRunner, db: Database
) -> None:
    from dataclasses import replace

    from service.db.pool import track_statements

    await db.fetch("ANALYZE articles")  # the planner's estimate needs statistics
    small = GraphQLRunner(replace(gql.settings, count_cap=1), db)
    with track_statements(record=True) as log:
        data = await small.data(
            '{ articles(search: "trump OR israel OR norway OR norge OR gaza OR covid", first: 1) { totalCount totalCountIsExact } }'
        )
    assert data["articles"]["totalCountIsExact"] is False
    assert not any("count(*)" in s for s in log.statements)
    assert any(s.startswith("EXPLAIN") for s in log.statements)
