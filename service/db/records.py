"""Rows as plain frozen dataclasses; the GraphQL and REST layers map from these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ArticleEntityRecord",
    "ArticleRecord",
    "ChangeRecord",
    "CoMentionRecord",
    "EntityRecord",
    "SourceRecord",
    "TombstoneRecord",
]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    id: int
    domain: str
    name: str
    country: str | None
    language: str | None
    article_count: int
    is_wire_service: bool = False


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """An article without its body, which is loaded only when asked for."""

    id: int
    source_id: int
    url: str
    canonical_url: str
    external_id: str | None
    title: str
    summary: str | None
    authors: list[str]
    language: str
    section: str | None
    tags: list[str]
    image_url: str | None
    image_credit: str | None
    image_caption: str | None
    image_alt: str | None
    image_width: int | None
    image_height: int | None
    published_at: datetime
    published_at_estimated: bool
    updated_at: datetime
    ingested_at: datetime


@dataclass(frozen=True, slots=True)
class EntityRecord:
    id: int
    kind: str
    name: str
    slug: str
    wikidata_id: str | None
    description: str | None
    article_count: int


@dataclass(frozen=True, slots=True)
class ArticleEntityRecord:
    article_id: int
    entity_id: int
    salience: float
    mention_count: int


@dataclass(frozen=True, slots=True)
class CoMentionRecord:
    entity_id: int
    other_id: int
    count: int


@dataclass(frozen=True, slots=True)
class TombstoneRecord:
    """What is kept of an article taken down: where it was, when and why it was removed."""

    article_id: int
    source_id: int
    url: str
    canonical_url: str
    urls: list[str]
    reason: str
    removed_at: datetime
    restored_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """An article's latest change in the feed, with the article (or its tombstone) as it is."""

    seq: int
    kind: str  # CREATED | UPDATED | REMOVED
    article_id: int
    changed_at: datetime
    article: ArticleRecord | None
    tombstone: TombstoneRecord | None
