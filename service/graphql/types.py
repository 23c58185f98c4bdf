"""GraphQL object types, mapped from db records; nested fields resolve through loaders.

The types live in one module because they reference each other (an article has a source and
entities; sources and entities have articles), and one module keeps that cycle readable.
"""

from __future__ import annotations

import enum
from dataclasses import replace
from datetime import datetime
from typing import Annotated, NewType

import strawberry

from service.db.articles import ArticleFilter as DbArticleFilter
from service.db.articles import ArticleOrder as DbArticleOrder
from service.db.articles import ArticlePageQuery, Scope
from service.db.records import (
    ArticleRecord,
    ChangeRecord,
    EntityRecord,
    SourceRecord,
    TombstoneRecord,
)
from service.db.stories import StoryRecord
from service.errors import BadInput, LimitExceeded
from service.graphql.context import Info
from service.graphql.pagination import decode_cursor, encode_cursor, page_size
from service.ids import decode_typed_id, encode_id
from service.related.find_related import RelatedItem, RelatedQuery

__all__ = [
    "LONG_SCALAR",
    "Article",
    "ArticleChange",
    "ArticleChangeConnection",
    "ArticleChangeEdge",
    "ArticleConnection",
    "ArticleFilter",
    "ArticleOrder",
    "ChangeKind",
    "Entity",
    "EntityConnection",
    "EntityKind",
    "Long",
    "Node",
    "RelatedStory",
    "Source",
    "SourceConnection",
    "Story",
    "StoryConnection",
    "Tombstone",
    "resolve_articles",
]

MAX_FILTER_VALUES = 100
MAX_SEARCH_LENGTH = 500
MAX_RELATED = 50
MAX_WINDOW_DAYS = 36500
MAX_DUPLICATES = 100


@strawberry.enum(description="What kind of thing an entity is.")
class EntityKind(enum.Enum):
    PERSON = strawberry.enum_value("PERSON", description="A person.")
    ORGANIZATION = strawberry.enum_value(
        "ORGANIZATION", description="A company, party, institution or group."
    )
    PLACE = strawberry.enum_value("PLACE", description="A country, city, region or site.")
    EVENT = strawberry.enum_value("EVENT", description="A named event (a war, a summit, a games).")
    PRODUCT = strawberry.enum_value("PRODUCT", description="A product, work or service.")
    OTHER = strawberry.enum_value("OTHER", description="Anything else.")


@strawberry.enum(description="How an article list is ordered.")
class ArticleOrder(enum.Enum):
    NEWEST = strawberry.enum_value("NEWEST", description="Latest published first (the default).")
    OLDEST = strawberry.enum_value("OLDEST", description="Earliest published first.")
    RELEVANCE = strawberry.enum_value(
        "RELEVANCE", description="Best full-text match first; needs `search`."
    )


@strawberry.interface(description="An object with a global, opaque id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="Global id; opaque, stable across releases.")


@strawberry.type(description="Where a page sits in a list, for cursor pagination.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more items follow `endCursor`.")
    has_previous_page: bool = strawberry.field(
        description="Whether items precede this page (true when `after` was given)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first item, if any.")
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item; pass it as `after` for the next page."
    )


@strawberry.type(description="A person credited with writing an article.")
class Author:
    name: str = strawberry.field(description="The name as published.")


@strawberry.type(description="The lead image of an article.")
class Image:
    url: str = strawberry.field(description="Address of the image.")
    credit: str | None = strawberry.field(description="Photographer or agency credit.")
    caption: str | None = strawberry.field(description="Caption shown with the image.")
    alt: str | None = strawberry.field(description="Alternative text for screen readers.")
    width: int | None = strawberry.field(description="Width in pixels, when known.")
    height: int | None = strawberry.field(description="Height in pixels, when known.")


@strawberry.input(description="Narrows an article list; all given conditions must hold.")
class ArticleFilter:
    sources: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only articles from any of these sources."
    )
    entities: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only articles that mention any of these entities."
    )
    languages: list[str] | None = strawberry.field(
        default=None,
        description="Only articles in any of these languages (ISO 639-1, e.g. en, nb).",
    )
    sections: list[str] | None = strawberry.field(
        default=None, description="Only articles in any of these sections (e.g. world, sport)."
    )
    published_after: datetime | None = strawberry.field(
        default=None, description="Only articles published at or after this time."
    )
    published_before: datetime | None = strawberry.field(
        default=None, description="Only articles published before this time."
    )


ArticleFilterArg = Annotated[
    ArticleFilter | None, strawberry.argument(description="Conditions the articles must meet.")
]
SearchArg = Annotated[
    str | None,
    strawberry.argument(
        description='Full-text search in web-search syntax: words, "quoted phrases", OR, '
        "-exclusion. Stemmed in each article's language."
    ),
]
OrderArg = Annotated[ArticleOrder, strawberry.argument(description="The order of the list.")]
FirstArg = Annotated[
    int | None, strawberry.argument(description="Page size, from 1 to 100 (default 20).")
]
AfterArg = Annotated[
    str | None,
    strawberry.argument(description="Return items after this cursor (an `endCursor`)."),
]


@strawberry.type(description="A news article: what was published, by whom, about whom.")
class Article(Node):
    url: str = strawberry.field(description="The article's address (canonicalised).")
    canonical_url: str = strawberry.field(
        description="The page's canonical address; equal articles share it (the dedupe key)."
    )
    title: str = strawberry.field(description="The headline.")
    summary: str | None = strawberry.field(description="A short plain-text summary.")
    authors: list[Author] = strawberry.field(description="Credited authors, in byline order.")
    published_at: datetime = strawberry.field(description="When it was published, in UTC.")
    published_at_estimated: bool = strawberry.field(
        description="True when the publisher gave no date and `publishedAt` is the ingest time."
    )
    updated_at: datetime = strawberry.field(description="When its stored content last changed.")
    language: str = strawberry.field(description="ISO 639-1 language code, or `und`.")
    section: str | None = strawberry.field(description="The publisher's section, e.g. world.")
    tags: list[str] = strawberry.field(description="The publisher's tags.")
    image: Image | None = strawberry.field(description="The lead image, if any.")
    record: strawberry.Private[ArticleRecord]

    @classmethod
    def from_record(cls, record: ArticleRecord) -> Article:
        image = None
        if record.image_url:
            image = Image(
                url=record.image_url,
                credit=record.image_credit,
                caption=record.image_caption,
                alt=record.image_alt,
                width=record.image_width,
                height=record.image_height,
            )
        return cls(
            id=strawberry.ID(encode_id("Article", record.id)),
            url=record.url,
            canonical_url=record.canonical_url,
            title=record.title,
            summary=record.summary,
            authors=[Author(name=name) for name in record.authors],
            published_at=record.published_at,
            published_at_estimated=record.published_at_estimated,
            updated_at=record.updated_at,
            language=record.language,
            section=record.section,
            tags=list(record.tags),
            image=image,
            record=record,
        )

    @strawberry.field(description="The full text, plain; fetched only when asked for.")
    async def body(self, info: Info) -> str | None:
        return await info.context.loaders.article_body.load(self.record.id)

    @strawberry.field(description="The publisher.")
    async def source(self, info: Info) -> Source:
        record = await info.context.loaders.source.load(self.record.source_id)
        assert record is not None  # a foreign key guarantees it
        return Source.from_record(record)

    @strawberry.field(description="The entities the article is about, most salient first.")
    async def entities(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="At most this many (default: all).")
        ] = None,
    ) -> list[ArticleEntity]:
        links = await info.context.loaders.article_entities.load(self.record.id)
        if first is not None:
            links = links[: max(first, 0)]
        return [
            ArticleEntity(
                entity_id=link.entity_id, salience=link.salience, mention_count=link.mention_count
            )
            for link in links
        ]

    @strawberry.field(
        description="Coverage of the same story or subject, other sources first, each with the "
        "reasons it is related. Copies of one text count once unless `includeDuplicates`."
    )
    async def related_stories(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description=f"How many, from 1 to {MAX_RELATED}.")
        ] = 5,
        window_days: Annotated[
            int,
            strawberry.argument(
                description="Only articles published within this many days before or after "
                f"this one (0 to {MAX_WINDOW_DAYS})."
            ),
        ] = 30,
        include_same_source: Annotated[
            bool,
            strawberry.argument(description="Also list this article's own source (after others)."),
        ] = False,
        include_duplicates: Annotated[
            bool,
            strawberry.argument(description="List every copy of a text, not one per group."),
        ] = False,
        exclude: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="Articles never to list (e.g. already on the page)."),
        ] = None,
        languages: Annotated[
            list[str] | None,
            strawberry.argument(description="Only articles in any of these languages."),
        ] = None,
    ) -> list[RelatedStory]:
        query = related_query(
            first, window_days, include_same_source, include_duplicates, exclude, languages
        )
        items = await info.context.loaders.related.load((self.record.id, query))
        records = await info.context.loaders.article.load_many([i.article_id for i in items])
        return [
            RelatedStory(
                article=Article.from_record(record),
                score=item.score,
                reasons=RelatedReasons.from_item(item),
            )
            for item, record in zip(items, records, strict=True)
            if record is not None
        ]

    @strawberry.field(description="The story (cluster of coverage of one event) it belongs to.")
    async def story(self, info: Info) -> Story | None:
        relations = await info.context.loaders.relations.load(self.record.id)
        if relations is None or relations.story_id is None:
            return None
        record = await info.context.loaders.story.load(relations.story_id)
        return Story.from_record(record) if record else None

    @strawberry.field(
        description="The original when this article is a near-identical copy of another "
        "(a wire story republished): the wire service's copy, else the earliest published."
    )
    async def duplicate_of(self, info: Info) -> Article | None:
        relations = await info.context.loaders.relations.load(self.record.id)
        if relations is None or relations.duplicate_of is None:
            return None
        record = await info.context.loaders.article.load(relations.duplicate_of)
        return Article.from_record(record) if record else None

    @strawberry.field(
        description=f"Near-identical copies of this article when it is their original "
        f"(earliest first, at most {MAX_DUPLICATES})."
    )
    async def duplicates(self, info: Info) -> list[Article]:
        relations = await info.context.loaders.relations.load(self.record.id)
        if relations is None:
            return []
        records = await info.context.loaders.article.load_many(relations.copies)
        return [Article.from_record(r) for r in records if r is not None]

    @strawberry.field(description="True when editors keep it out of related-story lists.")
    async def exclude_from_related(self, info: Info) -> bool:
        relations = await info.context.loaders.relations.load(self.record.id)
        return relations is not None and relations.exclude_from_related


def related_query(
    first: int,
    window_days: int,
    include_same_source: bool,
    include_duplicates: bool,
    exclude: list[strawberry.ID] | None,
    languages: list[str] | None,
) -> RelatedQuery:
    """The checked arguments of `relatedStories` (hashable, so equal ones batch together)."""
    size = page_size(first, 5, MAX_RELATED)
    if window_days < 0:
        raise BadInput(f"`windowDays` must be 0 or more, got {window_days}", field="windowDays")
    if window_days > MAX_WINDOW_DAYS:
        raise LimitExceeded(
            f"`windowDays` must be at most {MAX_WINDOW_DAYS}, got {window_days}",
            field="windowDays",
        )
    if exclude is not None and len(exclude) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"`exclude` takes at most {MAX_FILTER_VALUES} ids")
    return RelatedQuery(
        first=size,
        window_days=window_days,
        include_same_source=include_same_source,
        include_duplicates=include_duplicates,
        exclude=tuple(sorted({decode_typed_id(v, "Article") for v in exclude or ()})),
        languages=_strings(languages, "languages"),
    )


@strawberry.enum(description="How a related article relates to the article it is listed under.")
class RelatedRelation(enum.Enum):
    SAME_STORY = strawberry.enum_value(
        "SAME_STORY", description="Coverage of the same event (the same story cluster)."
    )
    DUPLICATE = strawberry.enum_value(
        "DUPLICATE", description="The same text, e.g. a wire story republished."
    )
    RELATED = strawberry.enum_value(
        "RELATED", description="The same subject, another event or angle."
    )


@strawberry.type(description="Why an article is listed as related.")
class RelatedReasons:
    text_similarity: float = strawberry.field(
        description="TF-IDF cosine similarity of the two texts, from 0 to 1."
    )
    time_gap_hours: float | None = strawberry.field(
        description="Hours from this article to the related one: negative when the related one "
        "came earlier, positive for follow-ups; null when either date is only estimated."
    )
    relation: RelatedRelation = strawberry.field(description="What kind of relation it is.")
    entity_ids: strawberry.Private[tuple[int, ...]]

    @classmethod
    def from_item(cls, item: RelatedItem) -> RelatedReasons:
        return cls(
            text_similarity=item.text_similarity,
            time_gap_hours=item.time_gap_hours,
            relation=RelatedRelation[item.relation],
            entity_ids=item.shared_entities,
        )

    @strawberry.field(description="Entities among the most salient of both articles.")
    async def shared_entities(self, info: Info) -> list[Entity]:
        records = await info.context.loaders.entity.load_many(list(self.entity_ids))
        return [Entity.from_record(r) for r in records if r is not None]


@strawberry.type(description="An article related to another, with how close and why.")
class RelatedStory:
    article: Article = strawberry.field(description="The related article.")
    score: float = strawberry.field(description="How closely related, from 0 to 1.")
    reasons: RelatedReasons = strawberry.field(description="Why it is listed.")


@strawberry.type(
    description="A story: the articles covering one event, clustered as they arrive. The id "
    "of a story merged into another keeps resolving to the merged story."
)
class Story(Node):
    title: str = strawberry.field(description="The headline of its first article.")
    article_count: int = strawberry.field(description="How many articles it has.")
    first_published_at: datetime = strawberry.field(description="Its earliest article's date.")
    last_published_at: datetime = strawberry.field(description="Its latest article's date.")
    record: strawberry.Private[StoryRecord]

    @classmethod
    def from_record(cls, record: StoryRecord) -> Story:
        return cls(
            id=strawberry.ID(encode_id("Story", record.id)),
            title=record.title,
            article_count=record.article_count,
            first_published_at=record.first_published_at,
            last_published_at=record.last_published_at,
            record=record,
        )

    @strawberry.field(description="Its articles, newest first.")
    async def articles(
        self, info: Info, first: FirstArg = None, after: AfterArg = None
    ) -> ArticleConnection:
        settings = info.context.settings
        size = page_size(first, settings.default_page_size, settings.max_page_size)
        position = decode_cursor(after, "newest", (datetime, int)) if after else None
        rows = await info.context.loaders.story_articles.load(
            (self.record.id, position, size + 1)  # type: ignore[arg-type]
        )
        records = await info.context.loaders.article.load_many([i for i, _ in rows[:size]])
        edges = [
            ArticleEdge(
                cursor=encode_cursor("newest", (published_at, article_id)),
                node=Article.from_record(record),
            )
            for (article_id, published_at), record in zip(rows[:size], records, strict=True)
            if record is not None
        ]
        return ArticleConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            count_key=(Scope.ALL, 0, ArticlePageQuery(limit=0)),
            known_total=self.record.article_count,
        )

    @strawberry.field(description="How many sources cover it.")
    async def source_count(self, info: Info) -> int:
        return await info.context.loaders.story_sources.load(self.record.id)

    @strawberry.field(description="The entities it is most about (up to 10), most salient first.")
    async def entities(self, info: Info) -> list[Entity]:
        ids = await info.context.loaders.story_entities.load(self.record.id)
        records = await info.context.loaders.entity.load_many(ids)
        return [Entity.from_record(r) for r in records if r is not None]


@strawberry.type(description="A story in a list, with its cursor.")
class StoryEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this story.")
    node: Story = strawberry.field(description="The story.")


@strawberry.type(description="A page of stories.")
class StoryConnection:
    edges: list[StoryEdge] = strawberry.field(description="The stories on this page.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages exist.")


@strawberry.input(description="Narrows the story list.")
class StoryFilter:
    published_after: datetime | None = strawberry.field(
        default=None, description="Only stories with an article at or after this time."
    )
    min_articles: int | None = strawberry.field(
        default=None, description="Only stories with at least this many articles (default 1)."
    )


@strawberry.type(description="An entity as it appears in one article.")
class ArticleEntity:
    salience: float = strawberry.field(
        description="How central the entity is to the article, from 0 to 1."
    )
    mention_count: int = strawberry.field(description="How often the article mentions it.")
    entity_id: strawberry.Private[int]

    @strawberry.field(description="The entity.")
    async def entity(self, info: Info) -> Entity:
        record = await info.context.loaders.entity.load(self.entity_id)
        assert record is not None  # a foreign key guarantees it
        return Entity.from_record(record)


@strawberry.type(description="A publisher of articles.")
class Source(Node):
    name: str = strawberry.field(description="The publisher's name.")
    domain: str = strawberry.field(description="Its web domain, e.g. bbc.co.uk.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 country code.")
    language: str | None = strawberry.field(description="Its main language, when known.")
    is_wire_service: bool = strawberry.field(
        description="A news agency: its copy of a syndicated story counts as the original."
    )
    record: strawberry.Private[SourceRecord]

    @classmethod
    def from_record(cls, record: SourceRecord) -> Source:
        return cls(
            id=strawberry.ID(encode_id("Source", record.id)),
            name=record.name,
            domain=record.domain,
            country=record.country,
            language=record.language,
            is_wire_service=record.is_wire_service,
            record=record,
        )

    @strawberry.field(description="Its articles, newest first unless ordered otherwise.")
    async def articles(
        self,
        info: Info,
        filter: ArticleFilterArg = None,
        search: SearchArg = None,
        order_by: OrderArg = ArticleOrder.NEWEST,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> ArticleConnection:
        return await resolve_articles(
            info, Scope.SOURCE, self.record.id, filter, search, order_by, first, after,
            known_total=self.record.article_count,
        )  # fmt: skip


@strawberry.type(description="A person, organisation, place or other thing articles are about.")
class Entity(Node):
    name: str = strawberry.field(description="The preferred name.")
    slug: str = strawberry.field(description="A URL-friendly unique name, e.g. joe-biden.")
    kind: EntityKind = strawberry.field(description="What kind of thing it is.")
    wikidata_id: str | None = strawberry.field(description="Its Wikidata id (Q…), when known.")
    description: str | None = strawberry.field(description="A short description.")
    article_count: int = strawberry.field(description="How many articles mention it.")
    record: strawberry.Private[EntityRecord]

    @classmethod
    def from_record(cls, record: EntityRecord) -> Entity:
        return cls(
            id=strawberry.ID(encode_id("Entity", record.id)),
            name=record.name,
            slug=record.slug,
            kind=EntityKind[record.kind],
            wikidata_id=record.wikidata_id,
            description=record.description,
            article_count=record.article_count,
            record=record,
        )

    @strawberry.field(description="Other names for it (short forms, other languages).")
    async def aliases(self, info: Info) -> list[str]:
        return await info.context.loaders.aliases.load(self.record.id)

    @strawberry.field(
        description="Articles that mention it, newest first unless ordered otherwise."
    )
    async def articles(
        self,
        info: Info,
        filter: ArticleFilterArg = None,
        search: SearchArg = None,
        order_by: OrderArg = ArticleOrder.NEWEST,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> ArticleConnection:
        return await resolve_articles(
            info, Scope.ENTITY, self.record.id, filter, search, order_by, first, after,
            known_total=self.record.article_count,
        )  # fmt: skip

    @strawberry.field(
        description="Entities most often mentioned in the same articles (over its latest 1,000)."
    )
    async def co_mentioned(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description="How many, from 1 to 100 (default 10).")
        ] = 10,
    ) -> list[CoMention]:
        size = page_size(first, 10, info.context.settings.max_page_size)
        rows = await info.context.loaders.co_mentioned.load((self.record.id, size))
        return [CoMention(entity_id=row.other_id, count=row.count) for row in rows]


@strawberry.type(description="An entity mentioned together with another, and how often.")
class CoMention:
    count: int = strawberry.field(description="Articles mentioning both.")
    entity_id: strawberry.Private[int]

    @strawberry.field(description="The other entity.")
    async def entity(self, info: Info) -> Entity:
        record = await info.context.loaders.entity.load(self.entity_id)
        assert record is not None
        return Entity.from_record(record)


@strawberry.type(description="An article in a list, with its cursor.")
class ArticleEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this article.")
    node: Article = strawberry.field(description="The article.")


@strawberry.type(description="A page of articles.")
class ArticleConnection:
    edges: list[ArticleEdge] = strawberry.field(description="The articles on this page.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages exist.")
    count_key: strawberry.Private[tuple[Scope, int, ArticlePageQuery]]
    known_total: strawberry.Private[int | None]

    async def _total(self, info: Info) -> tuple[int, bool]:
        if self.known_total is not None:
            return self.known_total, True
        result: tuple[int, bool] = await info.context.loaders.article_counts.load(self.count_key)
        return result

    @strawberry.field(
        description="How many articles match: exact up to 10,000 (configurable), "
        "an estimate beyond (see `totalCountIsExact`)."
    )
    async def total_count(self, info: Info) -> int:
        return (await self._total(info))[0]

    @strawberry.field(description="False when `totalCount` is an estimate.")
    async def total_count_is_exact(self, info: Info) -> bool:
        return (await self._total(info))[1]


@strawberry.type(description="A source in a list, with its cursor.")
class SourceEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this source.")
    node: Source = strawberry.field(description="The source.")


@strawberry.type(description="A page of sources.")
class SourceConnection:
    edges: list[SourceEdge] = strawberry.field(description="The sources on this page.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages exist.")


@strawberry.type(description="An entity in a list, with its cursor.")
class EntityEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this entity.")
    node: Entity = strawberry.field(description="The entity.")


@strawberry.type(description="A page of entities.")
class EntityConnection:
    edges: list[EntityEdge] = strawberry.field(description="The entities on this page.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages exist.")


_ORDER_TYPES: dict[DbArticleOrder, tuple[type, ...]] = {
    DbArticleOrder.NEWEST: (datetime, int),
    DbArticleOrder.OLDEST: (datetime, int),
    DbArticleOrder.RELEVANCE: (float, int),
}


def _ids(values: list[strawberry.ID] | None, type_name: str, name: str) -> tuple[int, ...]:
    if not values:
        return ()
    if len(values) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"`filter.{name}` takes at most {MAX_FILTER_VALUES} values")
    return tuple(decode_typed_id(value, type_name) for value in values)


def _strings(values: list[str] | None, name: str, *, lower: bool = True) -> tuple[str, ...]:
    if not values:
        return ()
    if len(values) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"`filter.{name}` takes at most {MAX_FILTER_VALUES} values")
    return tuple(sorted({v.strip().lower() if lower else v.strip() for v in values}))


def to_db_filter(value: ArticleFilter | None) -> DbArticleFilter:
    if value is None:
        return DbArticleFilter()
    for name, moment in (
        ("publishedAfter", value.published_after),
        ("publishedBefore", value.published_before),
    ):
        if moment is not None and moment.tzinfo is None:
            raise BadInput(f"`filter.{name}` needs a time-zone offset, e.g. 2024-05-01T00:00:00Z")
    return DbArticleFilter(
        source_ids=tuple(sorted(set(_ids(value.sources, "Source", "sources")))),
        entity_ids=tuple(sorted(set(_ids(value.entities, "Entity", "entities")))),
        languages=_strings(value.languages, "languages"),
        sections=_strings(value.sections, "sections"),
        published_after=value.published_after,
        published_before=value.published_before,
    )


def _search_text(search: str | None) -> str | None:
    if search is None or not search.strip():
        return None
    if len(search) > MAX_SEARCH_LENGTH:
        raise LimitExceeded(f"`search` is limited to {MAX_SEARCH_LENGTH} characters")
    return search.strip()


async def resolve_articles(
    info: Info,
    scope: Scope,
    parent_id: int,
    filter: ArticleFilter | None,
    search: str | None,
    order_by: ArticleOrder,
    first: int | None,
    after: str | None,
    *,
    known_total: int | None = None,
) -> ArticleConnection:
    """One page of articles under a parent (or everyone's), through the batching loader."""
    settings = info.context.settings
    size = page_size(first, settings.default_page_size, settings.max_page_size)
    db_filter = to_db_filter(filter)
    text = _search_text(search)
    order = DbArticleOrder[order_by.name]
    if order is DbArticleOrder.RELEVANCE and text is None:
        raise BadInput("`orderBy: RELEVANCE` needs a `search` text")
    kind = order.value.lower()
    position = decode_cursor(after, kind, _ORDER_TYPES[order]) if after else None
    configs = await info.context.loaders.search_configs.load(db_filter.languages) if text else ()
    query = ArticlePageQuery(
        filter=db_filter,
        search=text,
        configs=configs,
        order=order,
        after=position,  # type: ignore[arg-type]
        limit=size + 1,
    )
    rows = await info.context.loaders.article_pages.load((scope, parent_id, query))
    edges = []
    for record, rank in rows[:size]:
        key = (rank if order is DbArticleOrder.RELEVANCE else record.published_at, record.id)
        edges.append(ArticleEdge(cursor=encode_cursor(kind, key), node=Article.from_record(record)))
    unfiltered = db_filter == DbArticleFilter() and text is None
    return ArticleConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count_key=(scope, parent_id, replace(query, after=None, limit=0)),
        known_total=known_total if unfiltered else None,
    )


# The change feed and takedowns (issue 8).

# Change sequence numbers outgrow GraphQL's 32-bit Int; registered in the schema's scalar_map.
Long = NewType("Long", int)
LONG_SCALAR = strawberry.scalar(
    name="Long",
    description="A whole number up to 2^63 - 1, as a JSON number (change sequence numbers).",
    serialize=int,
    parse_value=int,
)


@strawberry.enum(description="What happened to an article in the change feed.")
class ChangeKind(enum.Enum):
    CREATED = strawberry.enum_value("CREATED", description="It was stored for the first time.")
    UPDATED = strawberry.enum_value("UPDATED", description="Its stored content changed.")
    REMOVED = strawberry.enum_value(
        "REMOVED", description="It was taken down: its content is gone, a tombstone remains."
    )


@strawberry.type(description="What remains of an article that was taken down.")
class Tombstone:
    id: strawberry.ID = strawberry.field(description="The removed article's global id.")
    url: str = strawberry.field(description="Its address.")
    canonical_url: str = strawberry.field(description="Its canonical address.")
    urls: list[str] = strawberry.field(
        description="Every URL it was known by; ingest refuses them until an admin restores it."
    )
    reason: str = strawberry.field(description="Why it was removed.")
    removed_at: datetime = strawberry.field(description="When it was removed, in UTC.")
    restored_at: datetime | None = strawberry.field(
        description="When an admin allowed its URLs to be ingested again (null: still refused)."
    )

    @classmethod
    def from_record(cls, record: TombstoneRecord) -> Tombstone:
        return cls(
            id=strawberry.ID(encode_id("Article", record.article_id)),
            url=record.url,
            canonical_url=record.canonical_url,
            urls=list(record.urls),
            reason=record.reason,
            removed_at=record.removed_at,
            restored_at=record.restored_at,
        )


@strawberry.type(description="An article's latest change, numbered in the order of commits.")
class ArticleChange:
    seq: Long = strawberry.field(
        description="The change's sequence number: larger means committed later."
    )
    kind: ChangeKind = strawberry.field(description="Created, updated or removed.")
    changed_at: datetime = strawberry.field(description="When the change was committed, in UTC.")
    article: Article | None = strawberry.field(
        description="The article as it is now (null when removed)."
    )
    tombstone: Tombstone | None = strawberry.field(
        description="What remains of it when removed (else null)."
    )

    @classmethod
    def from_record(cls, record: ChangeRecord) -> ArticleChange:
        return cls(
            seq=Long(record.seq),
            kind=ChangeKind[record.kind],
            changed_at=record.changed_at,
            article=Article.from_record(record.article) if record.article else None,
            tombstone=Tombstone.from_record(record.tombstone) if record.tombstone else None,
        )


@strawberry.type(description="A change in the feed, with its cursor.")
class ArticleChangeEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this change.")
    node: ArticleChange = strawberry.field(description="The change.")


@strawberry.type(description="A page of the change feed.")
class ArticleChangeConnection:
    edges: list[ArticleChangeEdge] = strawberry.field(description="The changes, oldest first.")
    page_info: PageInfo = strawberry.field(
        description="Cursors and whether more changes exist now. When the page is empty, "
        "`endCursor` is the `after` given, so a poller can always keep `endCursor`."
    )
