"""The Query root: thin resolvers over the db layer and the loaders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from service.db import articles, changes, entities, sources, stories
from service.db.articles import Scope
from service.errors import BadInput, LimitExceeded
from service.graphql.context import Info
from service.graphql.pagination import decode_cursor, encode_cursor, page_size
from service.graphql.types import (
    AfterArg,
    Article,
    ArticleChange,
    ArticleChangeConnection,
    ArticleChangeEdge,
    ArticleConnection,
    ArticleFilterArg,
    ArticleOrder,
    Entity,
    EntityConnection,
    EntityEdge,
    EntityKind,
    FirstArg,
    Node,
    OrderArg,
    PageInfo,
    SearchArg,
    Source,
    SourceConnection,
    SourceEdge,
    Story,
    StoryConnection,
    StoryEdge,
    StoryFilter,
    resolve_articles,
)
from service.ids import decode_id, decode_typed_id
from service.ingest.normalize import canonicalize_url

__all__ = ["Query"]

MAX_AUTOCOMPLETE_LENGTH = 100
# Change-feed cursors carry the change's sequence number, so they never expire.
CHANGE_CURSOR = "change"


def _one_of(**given: object) -> None:
    present = [name for name, value in given.items() if value is not None]
    if len(present) != 1:
        raise BadInput(f"give exactly one of {', '.join(f'`{n}`' for n in given)}")


def _autocomplete_text(search: str | None) -> str | None:
    if search is None or not search.strip():
        return None
    if len(search) > MAX_AUTOCOMPLETE_LENGTH:
        raise LimitExceeded(f"`search` is limited to {MAX_AUTOCOMPLETE_LENGTH} characters")
    return search.strip()


@strawberry.type(description="Read news articles, their sources and the entities they mention.")
class Query:
    @strawberry.field(description="Any object by its global id; null when it does not exist.")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        type_name, key = decode_id(id)
        loaders = info.context.loaders
        if type_name == "Article":
            article = await loaders.article.load(key)
            return Article.from_record(article) if article else None
        if type_name == "Source":
            source = await loaders.source.load(key)
            return Source.from_record(source) if source else None
        if type_name == "Story":
            story = await loaders.story.load(key)
            return Story.from_record(story) if story else None
        entity = await loaders.entity.load(key)
        return Entity.from_record(entity) if entity else None

    @strawberry.field(
        description="One article by id or by URL (give exactly one); null when unknown. "
        "The URL is canonicalised as at ingest, so tracking parameters do not matter."
    )
    async def article(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Its global id.")
        ] = None,
        url: Annotated[
            str | None, strawberry.argument(description="Its URL or canonical URL.")
        ] = None,
    ) -> Article | None:
        _one_of(id=id, url=url)
        if id is not None:
            record = await info.context.loaders.article.load(decode_typed_id(id, "Article"))
        else:
            assert url is not None
            record = await articles.fetch_article_by_url(info.context.db, canonicalize_url(url))
        return Article.from_record(record) if record else None

    @strawberry.field(description="Articles, newest first unless ordered otherwise.")
    async def articles(
        self,
        info: Info,
        filter: ArticleFilterArg = None,
        search: SearchArg = None,
        order_by: OrderArg = ArticleOrder.NEWEST,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> ArticleConnection:
        return await resolve_articles(info, Scope.ALL, 0, filter, search, order_by, first, after)

    @strawberry.field(
        description="One source by id or by domain (give exactly one); null when unknown."
    )
    async def source(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Its global id.")
        ] = None,
        domain: Annotated[
            str | None, strawberry.argument(description="Its domain, e.g. reuters.com.")
        ] = None,
    ) -> Source | None:
        _one_of(id=id, domain=domain)
        if id is not None:
            record = await info.context.loaders.source.load(decode_typed_id(id, "Source"))
        else:
            assert domain is not None
            key = domain.strip().lower().removeprefix("www.")
            record = await sources.fetch_source_by_domain(info.context.db, key)
        return Source.from_record(record) if record else None

    @strawberry.field(description="Sources by name, optionally those matching `search`.")
    async def sources(
        self,
        info: Info,
        search: Annotated[
            str | None, strawberry.argument(description="Part of a name or domain.")
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> SourceConnection:
        settings = info.context.settings
        size = page_size(first, settings.default_page_size, settings.max_page_size)
        position = decode_cursor(after, "name", (str, int)) if after else None
        records = await sources.list_sources(
            info.context.db,
            search=_autocomplete_text(search),
            after=position,  # type: ignore[arg-type]
            limit=size + 1,
        )
        edges = [
            SourceEdge(cursor=encode_cursor("name", (r.name, r.id)), node=Source.from_record(r))
            for r in records[:size]
        ]
        return SourceConnection(
            edges=edges, page_info=_page_info(edges, len(records) > size, after)
        )

    @strawberry.field(
        description="One entity by id or by slug (give exactly one); null when unknown."
    )
    async def entity(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Its global id.")
        ] = None,
        slug: Annotated[
            str | None, strawberry.argument(description="Its slug, e.g. joe-biden.")
        ] = None,
    ) -> Entity | None:
        _one_of(id=id, slug=slug)
        if id is not None:
            record = await info.context.loaders.entity.load(decode_typed_id(id, "Entity"))
        else:
            assert slug is not None
            record = await entities.fetch_entity_by_slug(info.context.db, slug.strip().lower())
        return Entity.from_record(record) if record else None

    @strawberry.field(
        description="Entities, most mentioned first; with `search`, an autocomplete over names "
        "and aliases (names starting with the text first)."
    )
    async def entities(
        self,
        info: Info,
        search: Annotated[
            str | None, strawberry.argument(description="The start of a name or of a word in it.")
        ] = None,
        kind: Annotated[
            EntityKind | None, strawberry.argument(description="Only entities of this kind.")
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> EntityConnection:
        settings = info.context.settings
        size = page_size(first, settings.default_page_size, settings.max_page_size)
        text = _autocomplete_text(search)
        cursor_kind, types = ("match", (int, int, int)) if text else ("popular", (int, int))
        position = decode_cursor(after, cursor_kind, types) if after else None
        rows = await entities.list_entities(
            info.context.db,
            search=text,
            kind=kind.name if kind else None,
            after=position,  # type: ignore[arg-type]
            limit=size + 1,
        )
        edges = [
            EntityEdge(cursor=encode_cursor(cursor_kind, key), node=Entity.from_record(record))
            for record, key in rows[:size]
        ]
        return EntityConnection(edges=edges, page_info=_page_info(edges, len(rows) > size, after))

    @strawberry.field(
        description="The change feed: every article's latest change (created, updated, "
        "removed) in commit order, oldest first. A mirror stores `pageInfo.endCursor` and "
        "polls with it as `after`: it never misses a change, however late an article was "
        "ingested or updated. Cursors never expire."
    )
    async def changes(
        self,
        info: Info,
        since: Annotated[
            datetime | None,
            strawberry.argument(
                description="Start with the changes made at or after this time (ignored "
                "with `after`); without both, from the first change."
            ),
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> ArticleChangeConnection:
        settings = info.context.settings
        size = page_size(first, settings.default_page_size, settings.max_page_size)
        if since is not None and since.tzinfo is None:
            raise BadInput("`since` needs a time-zone offset, e.g. 2024-05-01T00:00:00Z")
        position = decode_cursor(after, CHANGE_CURSOR, (int,)) if after else None
        rows = await changes.fetch_changes(
            info.context.db,
            after=position[0] if position else None,  # type: ignore[arg-type]
            since=since,
            limit=size + 1,
        )
        loaded = {r.article.id: r.article for r in rows if r.article is not None}
        info.context.loaders.article.prime_many(loaded)
        edges = [
            ArticleChangeEdge(
                cursor=encode_cursor(CHANGE_CURSOR, (r.seq,)), node=ArticleChange.from_record(r)
            )
            for r in rows[:size]
        ]
        page_info = _page_info(edges, len(rows) > size, after)
        if not edges:
            page_info.end_cursor = after
        return ArticleChangeConnection(edges=edges, page_info=page_info)

    @strawberry.field(
        description="Stories (clusters of coverage of one event), latest activity first: an "
        "aggregator's front page."
    )
    async def stories(
        self,
        info: Info,
        filter: Annotated[
            StoryFilter | None, strawberry.argument(description="Conditions the stories meet.")
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> StoryConnection:
        settings = info.context.settings
        size = page_size(first, settings.default_page_size, settings.max_page_size)
        position = decode_cursor(after, "latest", (datetime, int)) if after else None
        since = filter.published_after if filter else None
        if since is not None and since.tzinfo is None:
            raise BadInput("`filter.publishedAfter` needs a time-zone offset")
        minimum = filter.min_articles if filter and filter.min_articles is not None else 1
        records = await stories.list_stories(
            info.context.db,
            after=position,  # type: ignore[arg-type]
            limit=size + 1,
            published_after=since,
            min_articles=minimum,
        )
        edges = [
            StoryEdge(
                cursor=encode_cursor("latest", (r.last_published_at, r.id)),
                node=Story.from_record(r),
            )
            for r in records[:size]
        ]
        return StoryConnection(edges=edges, page_info=_page_info(edges, len(records) > size, after))


def _page_info(
    edges: list[SourceEdge] | list[EntityEdge] | list[ArticleChangeEdge] | list[StoryEdge],
    more: bool,
    after: str | None,
) -> PageInfo:
    return PageInfo(
        has_next_page=more,
        has_previous_page=after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
