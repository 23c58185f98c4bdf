"""The JSON of the REST reads: GraphQL's field names and global ids, built from db records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from service.db import entities, sources
from service.db.articles import fetch_article_bodies
from service.db.pool import Database
from service.db.records import ArticleRecord, EntityRecord, SourceRecord, TombstoneRecord
from service.ids import encode_id

__all__ = [
    "articles_json",
    "connection",
    "entity_json",
    "source_json",
    "time_json",
    "tombstone_json",
]


def time_json(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def source_json(record: SourceRecord) -> dict[str, Any]:
    return {
        "id": encode_id("Source", record.id),
        "name": record.name,
        "domain": record.domain,
        "country": record.country,
        "language": record.language,
        "articleCount": record.article_count,
    }


def entity_json(record: EntityRecord) -> dict[str, Any]:
    return {
        "id": encode_id("Entity", record.id),
        "name": record.name,
        "slug": record.slug,
        "kind": record.kind,
        "wikidataId": record.wikidata_id,
        "description": record.description,
        "articleCount": record.article_count,
    }


def tombstone_json(record: TombstoneRecord) -> dict[str, Any]:
    return {
        "id": encode_id("Article", record.article_id),
        "url": record.url,
        "canonicalUrl": record.canonical_url,
        "urls": list(record.urls),
        "reason": record.reason,
        "removedAt": time_json(record.removed_at),
        "restoredAt": time_json(record.restored_at),
    }


async def articles_json(
    db: Database, records: Sequence[ArticleRecord], *, body: bool = False
) -> list[dict[str, Any]]:
    """Articles with their source and entities: three or four statements for any number."""
    if not records:
        return []
    ids = [r.id for r in records]
    found_sources = await sources.fetch_sources_by_ids(db, sorted({r.source_id for r in records}))
    links = await entities.fetch_article_entities(db, ids)
    entity_ids = sorted({link.entity_id for rows in links.values() for link in rows})
    found_entities = await entities.fetch_entities_by_ids(db, entity_ids) if entity_ids else {}
    bodies = await fetch_article_bodies(db, ids) if body else {}
    result = []
    for r in records:
        image = None
        if r.image_url:
            image = {
                "url": r.image_url,
                "credit": r.image_credit,
                "caption": r.image_caption,
                "alt": r.image_alt,
                "width": r.image_width,
                "height": r.image_height,
            }
        item: dict[str, Any] = {
            "id": encode_id("Article", r.id),
            "url": r.url,
            "canonicalUrl": r.canonical_url,
            "title": r.title,
            "summary": r.summary,
            "authors": [{"name": name} for name in r.authors],
            "publishedAt": time_json(r.published_at),
            "publishedAtEstimated": r.published_at_estimated,
            "updatedAt": time_json(r.updated_at),
            "language": r.language,
            "section": r.section,
            "tags": list(r.tags),
            "image": image,
            "source": source_json(found_sources[r.source_id]),
            "entities": [
                {
                    "salience": link.salience,
                    "mentionCount": link.mention_count,
                    "entity": entity_json(found_entities[link.entity_id]),
                }
                for link in links.get(r.id, [])
                if link.entity_id in found_entities
            ],
        }
        if body:
            item["body"] = bodies.get(r.id)
        result.append(item)
    return result


def connection(edges: list[dict[str, Any]], more: bool, after: str | None) -> dict[str, Any]:
    return {
        "edges": edges,
        "pageInfo": {
            "hasNextPage": more,
            "hasPreviousPage": after is not None,
            "startCursor": edges[0]["cursor"] if edges else None,
            # An empty page keeps the cursor given, so a poller can always store endCursor.
            "endCursor": edges[-1]["cursor"] if edges else after,
        },
    }
