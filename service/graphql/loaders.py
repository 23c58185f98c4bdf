"""Per-request DataLoaders: every nested field batches through one of these.

Built fresh in `get_context` for each request (never shared), so nothing is cached across
requests or callers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias

from strawberry.dataloader import DataLoader

from service.db import articles, entities, search, sources, stories
from service.db.articles import ArticleFilter, ArticlePageQuery, Scope
from service.db.pool import Database
from service.db.records import (
    ArticleEntityRecord,
    ArticleRecord,
    CoMentionRecord,
    EntityRecord,
    SourceRecord,
)
from service.db.search import SearchConfigs
from service.db.stories import ArticleRelations, StoryRecord
from service.related.find_related import RelatedItem, RelatedQuery
from service.related.lists import related_stories

__all__ = ["Loaders", "PageKey", "PageRows", "StoryPageKey"]

MAX_BATCH = 1000

PageKey: TypeAlias = tuple[Scope, int, ArticlePageQuery]
PageRows: TypeAlias = list[tuple[ArticleRecord, float | None]]
StoryPageKey: TypeAlias = tuple[int, tuple[datetime, int] | None, int]
STORY_ENTITIES = 10


class Loaders:
    def __init__(self, db: Database, count_cap: int) -> None:
        self.db = db
        self.count_cap = count_cap
        self.article = DataLoader(self._articles, max_batch_size=MAX_BATCH)
        self.article_body = DataLoader(self._bodies, max_batch_size=MAX_BATCH)
        self.source = DataLoader(self._sources, max_batch_size=MAX_BATCH)
        self.entity = DataLoader(self._entities, max_batch_size=MAX_BATCH)
        self.aliases = DataLoader(self._aliases, max_batch_size=MAX_BATCH)
        self.article_entities = DataLoader(self._article_entities, max_batch_size=MAX_BATCH)
        self.co_mentioned = DataLoader(self._co_mentioned, max_batch_size=MAX_BATCH)
        self.article_pages = DataLoader(self._article_pages, max_batch_size=MAX_BATCH)
        self.article_counts = DataLoader(self._article_counts, max_batch_size=MAX_BATCH)
        self.search_configs = DataLoader(self._search_configs, max_batch_size=MAX_BATCH)
        self.related = DataLoader(self._related, max_batch_size=MAX_BATCH)
        self.relations = DataLoader(self._relations, max_batch_size=MAX_BATCH)
        self.story = DataLoader(self._stories, max_batch_size=MAX_BATCH)
        self.story_articles = DataLoader(self._story_articles, max_batch_size=MAX_BATCH)
        self.story_sources = DataLoader(self._story_sources, max_batch_size=MAX_BATCH)
        self.story_entities = DataLoader(self._story_entities, max_batch_size=MAX_BATCH)

    async def _related(self, keys: Sequence[tuple[int, RelatedQuery]]) -> list[list[RelatedItem]]:
        groups: dict[RelatedQuery, list[int]] = defaultdict(list)
        for article_id, query in keys:
            groups[query].append(article_id)
        found: dict[tuple[int, RelatedQuery], list[RelatedItem]] = {}
        for query, ids in groups.items():
            related = await related_stories(self.db, ids, query)
            # The listed articles and their sources came along: their fields need no statement.
            self.article.prime_many(related.articles)
            self.source.prime_many(related.sources)
            for article_id, items in related.items.items():
                found[(article_id, query)] = items
        return [found.get(key, []) for key in keys]

    async def _relations(self, ids: Sequence[int]) -> list[ArticleRelations | None]:
        found = await stories.fetch_duplicates(self.db, ids)
        return [found.get(i) for i in ids]

    async def _stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        found = await stories.fetch_stories_by_ids(self.db, ids)
        return [found.get(i) for i in ids]

    async def _story_articles(
        self, keys: Sequence[StoryPageKey]
    ) -> list[list[tuple[int, datetime]]]:
        groups: dict[tuple[tuple[datetime, int] | None, int], list[int]] = defaultdict(list)
        for story_id, after, limit in keys:
            groups[(after, limit)].append(story_id)
        found: dict[StoryPageKey, list[tuple[int, datetime]]] = {}
        for (after, limit), ids in groups.items():
            pages = await stories.fetch_story_articles(self.db, ids, after, limit)
            for story_id in ids:
                found[(story_id, after, limit)] = pages.get(story_id, [])
        return [found[key] for key in keys]

    async def _story_sources(self, ids: Sequence[int]) -> list[int]:
        found = await stories.fetch_story_source_counts(self.db, ids)
        return [found.get(i, 0) for i in ids]

    async def _story_entities(self, ids: Sequence[int]) -> list[list[int]]:
        found = await stories.fetch_story_entities(self.db, ids, STORY_ENTITIES)
        return [found.get(i, []) for i in ids]

    async def _search_configs(self, keys: Sequence[tuple[str, ...]]) -> list[SearchConfigs]:
        present = await search.fetch_languages(self.db)
        return [search.search_configs(present, languages) for languages in keys]

    async def _articles(self, ids: Sequence[int]) -> list[ArticleRecord | None]:
        found = await articles.fetch_articles_by_ids(self.db, ids)
        return [found.get(i) for i in ids]

    async def _bodies(self, ids: Sequence[int]) -> list[str | None]:
        found = await articles.fetch_article_bodies(self.db, ids)
        return [found.get(i) for i in ids]

    async def _sources(self, ids: Sequence[int]) -> list[SourceRecord | None]:
        found = await sources.fetch_sources_by_ids(self.db, ids)
        return [found.get(i) for i in ids]

    async def _entities(self, ids: Sequence[int]) -> list[EntityRecord | None]:
        found = await entities.fetch_entities_by_ids(self.db, ids)
        return [found.get(i) for i in ids]

    async def _aliases(self, ids: Sequence[int]) -> list[list[str]]:
        found = await entities.fetch_aliases(self.db, ids)
        return [found.get(i, []) for i in ids]

    async def _article_entities(self, ids: Sequence[int]) -> list[list[ArticleEntityRecord]]:
        found = await entities.fetch_article_entities(self.db, ids)
        return [found.get(i, []) for i in ids]

    async def _co_mentioned(self, keys: Sequence[tuple[int, int]]) -> list[list[CoMentionRecord]]:
        by_first: dict[int, list[int]] = defaultdict(list)
        for entity_id, first in keys:
            by_first[first].append(entity_id)
        found: dict[tuple[int, int], list[CoMentionRecord]] = {}
        for first, ids in by_first.items():
            for entity_id, rows in (await entities.fetch_co_mentioned(self.db, ids, first)).items():
                found[(entity_id, first)] = rows
        return [found.get(key, []) for key in keys]

    async def _article_pages(self, keys: Sequence[PageKey]) -> list[PageRows]:
        groups: dict[tuple[Scope, ArticlePageQuery], list[int]] = defaultdict(list)
        for scope, parent, query in keys:
            groups[(scope, query)].append(parent)
        found: dict[PageKey, PageRows] = {}
        for (scope, query), parents in groups.items():
            pages = await articles.fetch_article_pages(self.db, query, scope, parents)
            for parent in parents:
                found[(scope, parent, query)] = pages.get(parent, [])
        self.article.prime_many({rec.id: rec for rows in found.values() for rec, _ in rows})
        return [found[key] for key in keys]

    async def _article_counts(self, keys: Sequence[PageKey]) -> list[tuple[int, bool]]:
        groups: dict[tuple[Scope, ArticlePageQuery], list[int]] = defaultdict(list)
        for scope, parent, query in keys:
            groups[(scope, query)].append(parent)
        found: dict[PageKey, tuple[int, bool]] = {}
        for (scope, query), parents in groups.items():
            if scope is Scope.ALL and query.search is None and query.filter == ArticleFilter():
                found[(scope, 0, query)] = (await articles.count_all_articles(self.db), True)
                continue
            if scope is Scope.ALL and query.search is not None:
                # Counting the matches of a common term costs hundreds of milliseconds; when
                # the planner expects far more than the cap, its estimate is the answer.
                estimate = await articles.estimate_articles(self.db, query)
                if estimate > 2 * self.count_cap:
                    found[(scope, 0, query)] = (estimate, False)
                    continue
            counts = await articles.count_articles(self.db, query, scope, parents, self.count_cap)
            for parent in parents:
                n = counts.get(parent, 0)
                if n <= self.count_cap:
                    found[(scope, parent, query)] = (n, True)
                elif scope is Scope.ALL:
                    estimate = await articles.estimate_articles(self.db, query)
                    found[(scope, parent, query)] = (max(estimate, self.count_cap + 1), False)
                else:
                    found[(scope, parent, query)] = (n, False)
        return [found[key] for key in keys]
