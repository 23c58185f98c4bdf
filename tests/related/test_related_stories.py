"""relatedStories, stories and wire copies, end to end: ingest, then ask through GraphQL."""

from __future__ import annotations

from typing import Any

import pytest

from service.db.pool import Database, track_statements
from service.ids import encode_id
from service.ingest.pipeline import ingest_batch
from service.related.indexer import drain
from tests.conftest import GraphQLRunner

ICELAND = (
    "A volcano erupted near the fishing town of Grindavik on Iceland's Reykjanes peninsula "
    "late on Monday, sending lava fountains into the night sky. Authorities evacuated "
    "Grindavik and the nearby Blue Lagoon spa, and the Icelandic Meteorological Office said "
    "the fissure was about four kilometres long. Flights at Keflavik airport were not affected."
)
ICELAND_2 = (
    "Lava poured from a fissure on the Reykjanes peninsula near Grindavik after weeks of "
    "earthquakes. Residents of Grindavik had been evacuated in November, and the Blue Lagoon "
    "closed again. The Icelandic Meteorological Office warned of gas pollution near Keflavik."
)
ICELAND_3 = (
    "Iceland's Reykjanes eruption: the Meteorological Office says the Grindavik fissure is "
    "shrinking, while the Blue Lagoon stays closed and Keflavik flights continue."
)
HAWAII = (
    "Kilauea volcano on Hawaii's Big Island began erupting inside its summit crater on "
    "Wednesday, the US Geological Survey said, with lava fountains visible from the Hawaii "
    "Volcanoes National Park. No homes are threatened, and the park stays open to visitors."
)
WIRE = (
    "The central bank of Norway raised its policy rate by a quarter point to 4.5 percent on "
    "Thursday, its highest since 2008, and said it would likely keep it there for some time, "
    "as inflation stays well above the target of two percent and the krone remains weak."
)
FOOTBALL = (
    "Manchester City beat Arsenal 4-1 at the Etihad to move top of the Premier League, with "
    "Kevin De Bruyne scoring twice and Erling Haaland adding a late goal for the champions."
)


def _item(
    n: int, domain: str, title: str, body: str, date: str | None, **extra: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "url": f"https://{domain}/news/{n}",
        "title": title,
        "body": body,
        "language": "en",
        "source": {"domain": domain, "name": domain.split(".")[0].title()},
    }
    if date is not None:
        item["publishedAt"] = date
    item.update(extra)
    return item


ARTICLES = [
    _item(
        1,
        "bbc.example",
        "Volcano erupts near Grindavik in Iceland",
        ICELAND,
        "2024-12-18T23:00:00Z",
    ),
    _item(
        2,
        "cnn.example",
        "Iceland volcano: lava reaches towards Grindavik",
        ICELAND_2,
        "2024-12-19T06:00:00Z",
    ),
    _item(
        3,
        "bbc.example",
        "Grindavik fissure shrinking, Iceland says",
        ICELAND_3,
        "2024-12-20T10:00:00Z",
    ),
    _item(4, "nyt.example", "Kilauea volcano erupts in Hawaii", HAWAII, "2024-12-18T20:00:00Z"),
    _item(
        5,
        "wire.example",
        "Norway's central bank raises rate to 4.5 percent",
        WIRE,
        "2024-12-19T09:00:00Z",
    ),
    _item(
        6,
        "paper.example",
        "Norway's central bank raises rate to 4.5 percent",
        WIRE,
        "2024-12-19T08:00:00Z",
    ),
    _item(
        7,
        "daily.example",
        "Norway's central bank raises rate to 4.5 percent",
        WIRE,
        "2024-12-19T10:00:00Z",
    ),
    _item(8, "sport.example", "City beat Arsenal to go top", FOOTBALL, "2024-12-19T20:00:00Z"),
    _item(
        9,
        "late.example",
        "Grindavik volcano eruption in Iceland, a year on",
        ICELAND + " A year later.",
        "2025-12-18T23:00:00Z",
    ),
]

RELATED = """
query($id: ID!, $first: Int = 5, $windowDays: Int = 30, $same: Boolean = false,
      $dups: Boolean = false, $exclude: [ID!], $languages: [String!]) {
  article(id: $id) {
    title
    relatedStories(first: $first, windowDays: $windowDays, includeSameSource: $same,
                   includeDuplicates: $dups, exclude: $exclude, languages: $languages) {
      score
      article { id title source { domain } }
      reasons { textSimilarity timeGapHours relation sharedEntities { name } }
    }
  }
}"""


async def _ingest(db: Database, items: list[dict[str, Any]]) -> list[int]:
    results = await ingest_batch(db, items)
    assert all(r.status == "CREATED" for r in results), results
    await drain(db)  # related stories are indexed after commit
    return [r.article_id for r in results if r.article_id is not None]


@pytest.fixture
async def ids(write_db: Database) -> list[int]:
    return await _ingest(write_db, ARTICLES)


def _gid(article_id: int) -> str:
    return encode_id("Article", article_id)


async def _related(gql: GraphQLRunner, article_id: int, **variables: Any) -> list[dict[str, Any]]:
    data = await gql.data(RELATED, id=_gid(article_id), **variables)
    return list(data["article"]["relatedStories"])


async def test_same_story_from_other_sources_comes_first(
    gql_write: GraphQLRunner, ids: list[int]
) -> None:
    items = await _related(gql_write, ids[0])
    titles = [i["article"]["title"] for i in items]
    assert titles[0] == "Iceland volcano: lava reaches towards Grindavik"
    first = items[0]
    assert first["reasons"]["relation"] == "SAME_STORY"
    assert first["reasons"]["timeGapHours"] == 7.0  # signed: a follow-up, seven hours later
    assert 0 < first["reasons"]["textSimilarity"] <= 1
    # Own source left out by default; the other volcano ranks below the same story.
    assert all(i["article"]["source"]["domain"] != "bbc.example" for i in items)
    assert "Kilauea volcano erupts in Hawaii" not in titles[:1]
    assert "City beat Arsenal to go top" not in titles


async def test_copies_collapse_to_one_unless_asked(
    gql_write: GraphQLRunner, ids: list[int]
) -> None:
    items = await _related(gql_write, ids[4], first=10)
    copies = [i for i in items if i["reasons"]["relation"] == "DUPLICATE"]
    assert len(copies) == 1
    everything = await _related(gql_write, ids[4], first=10, dups=True)
    copies = [i for i in everything if i["reasons"]["relation"] == "DUPLICATE"]
    assert {i["article"]["source"]["domain"] for i in copies} == {"paper.example", "daily.example"}
    assert all(i["reasons"]["textSimilarity"] > 0.99 for i in copies)


ORIGINAL = """
query($id: ID!) { article(id: $id) {
  duplicateOf { source { domain } }
  duplicates { source { domain } }
  story { id title articleCount sourceCount articles(first: 10) { edges { node { title } } } }
} }"""


async def test_earliest_copy_is_the_original(gql_write: GraphQLRunner, ids: list[int]) -> None:
    wire = (await gql_write.data(ORIGINAL, id=_gid(ids[4])))["article"]
    assert wire["duplicateOf"] == {"source": {"domain": "paper.example"}}
    paper = (await gql_write.data(ORIGINAL, id=_gid(ids[5])))["article"]
    assert paper["duplicateOf"] is None
    assert {d["source"]["domain"] for d in paper["duplicates"]} == {"wire.example", "daily.example"}


async def test_a_wire_service_copy_is_the_original(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    first = await _ingest(write_db, [_item(20, "agency.example", "Agency hello", FOOTBALL, None)])
    source = await gql_write.data(
        "query($id: ID!) { article(id: $id) { source { id } } }", id=_gid(first[0])
    )
    marked = await gql_write.data(
        "mutation($s: ID!) { setSourceWireService(source: $s, isWireService: true) "
        "{ domain isWireService } }",
        s=source["article"]["source"]["id"],
    )
    assert marked["setSourceWireService"] == {"domain": "agency.example", "isWireService": True}
    # The newspaper printed it an hour before the agency's copy arrived: the agency's is the original.
    ids = await _ingest(
        write_db,
        [
            _item(21, "paper.example", "Rates up", WIRE, "2024-12-19T08:00:00Z"),
            _item(22, "agency.example", "Rates up", WIRE, "2024-12-19T09:00:00Z"),
        ],
    )
    paper = (await gql_write.data(ORIGINAL, id=_gid(ids[0])))["article"]
    assert paper["duplicateOf"] == {"source": {"domain": "agency.example"}}


async def test_window_bounds_candidates_on_both_sides(
    gql_write: GraphQLRunner, ids: list[int]
) -> None:
    near = [i["article"]["title"] for i in await _related(gql_write, ids[0], first=10)]
    assert "Grindavik volcano eruption in Iceland, a year on" not in near
    wide = await _related(gql_write, ids[0], first=10, windowDays=400)
    later = [i for i in wide if i["article"]["title"].endswith("a year on")]
    assert later
    assert later[0]["reasons"]["timeGapHours"] == 365 * 24
    back = await _related(gql_write, ids[8], first=10, windowDays=400)
    assert any(i["reasons"]["timeGapHours"] == -365 * 24 for i in back)


async def test_same_source_only_when_asked_and_after_others(
    gql_write: GraphQLRunner, ids: list[int]
) -> None:
    items = await _related(gql_write, ids[0], first=10, same=True)
    domains = [i["article"]["source"]["domain"] for i in items]
    assert "bbc.example" in domains
    assert all(d != "bbc.example" for d in domains[: domains.index("bbc.example")])
    assert all(d == "bbc.example" for d in domains[domains.index("bbc.example") :])


async def test_exclude_languages_and_editorial_exclusion(
    gql_write: GraphQLRunner, ids: list[int]
) -> None:
    cnn = _gid(ids[1])
    items = await _related(gql_write, ids[0], first=10, exclude=[cnn])
    assert cnn not in [i["article"]["id"] for i in items]
    assert await _related(gql_write, ids[0], first=10, languages=["nb"]) == []
    flagged = await gql_write.data(
        "mutation($a: ID!) { setExcludeFromRelated(article: $a) { id excludeFromRelated } }", a=cnn
    )
    assert flagged["setExcludeFromRelated"] == {"id": cnn, "excludeFromRelated": True}
    items = await _related(gql_write, ids[0], first=10)
    assert cnn not in [i["article"]["id"] for i in items]


async def test_stories_cluster_coverage_and_merged_ids_resolve(
    gql_write: GraphQLRunner, write_db: Database, ids: list[int]
) -> None:
    bbc = (await gql_write.data(ORIGINAL, id=_gid(ids[0])))["article"]["story"]
    cnn = (await gql_write.data(ORIGINAL, id=_gid(ids[1])))["article"]["story"]
    hawaii = (await gql_write.data(ORIGINAL, id=_gid(ids[3])))["article"]["story"]
    assert bbc["id"] == cnn["id"] != hawaii["id"]
    assert bbc["sourceCount"] >= 2
    assert bbc["title"] == "Volcano erupts near Grindavik in Iceland"
    listed = await gql_write.data(
        "{ stories(first: 20, filter: {minArticles: 2}) { edges { node { id articleCount } } } }"
    )
    assert bbc["id"] in [e["node"]["id"] for e in listed["stories"]["edges"]]
    # Merge the Hawaii story into Iceland's (as ingest does when an article bridges two):
    # the old id keeps resolving, to the survivor.
    from service.db import stories
    from service.ids import decode_typed_id

    survivor, merged = decode_typed_id(bbc["id"], "Story"), decode_typed_id(hawaii["id"], "Story")
    async with write_db.transaction() as w:
        await stories.merge_stories(w, survivor, [merged])
    node = await gql_write.data(
        "query($id: ID!) { node(id: $id) { id ... on Story { articleCount } } }", id=hawaii["id"]
    )
    assert node["node"]["id"] == bbc["id"]
    assert node["node"]["articleCount"] == bbc["articleCount"] + 1


SHAPE_BOUND = 16
LIST = """
query($first: Int!) { articles(first: $first, filter: {languages: ["en"]}) { edges { node {
  title relatedStories(first: 3) { score article { title source { name } }
    reasons { relation sharedEntities { name } } }
  story { title sourceCount entities { name } }
} } } }"""


async def test_related_for_a_list_is_not_n_plus_one(
    gql_write: GraphQLRunner, ids: list[int]
) -> None:
    with track_statements() as small:
        data = await gql_write.data(LIST, first=2)
    assert len(data["articles"]["edges"]) == 2
    with track_statements() as large:
        data = await gql_write.data(LIST, first=9)
    assert len(data["articles"]["edges"]) == 9
    # Bounded by the query's shape (a statement or two per loader: articles, related, article,
    # source, entity, relations, story, story sources, story entities), not by the page: the
    # exact count varies with how the loaders' batches fall together.
    assert small.count <= SHAPE_BOUND
    assert large.count <= SHAPE_BOUND


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"first": 500}, "LIMIT_EXCEEDED"),
        ({"first": 0}, "BAD_INPUT"),
        ({"windowDays": -1}, "BAD_INPUT"),
        ({"windowDays": 100_000}, "LIMIT_EXCEEDED"),
        ({"exclude": ["not-an-id"]}, "BAD_INPUT"),
    ],
)
async def test_bad_arguments_are_clear_errors(
    gql_write: GraphQLRunner, ids: list[int], variables: dict[str, Any], code: str
) -> None:
    result = await gql_write(RELATED, id=_gid(ids[0]), **variables)
    assert result.errors is not None
    assert result.errors[0].extensions is not None
    assert result.errors[0].extensions["code"] == code
    assert result.errors[0].message
