"""The Mutation root: bulk ingest and entity-catalogue management.

`ArticleInput`'s fields are nullable plain types, so a missing title or a malformed date is
reported for that item (REJECTED, with a path and code) by the ingest pipeline instead of
failing the whole operation in GraphQL validation.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import strawberry

from service.auth import Role, current_principal, require
from service.db import stories
from service.db.takedowns import remove_articles, resolve_article_urls, restore_urls
from service.errors import BadInput, LimitExceeded
from service.graphql.context import Info
from service.graphql.types import Article, Entity, EntityKind, Source, Tombstone
from service.ids import decode_typed_id
from service.ingest.normalize import canonicalize_url
from service.ingest.pipeline import (
    ItemResult,
    ingest_batch,
    load_catalogue,
    merge_catalogue_entities,
)

__all__ = ["Mutation"]

MAX_ENTITIES_PER_CALL = 1000
MAX_TAKEDOWNS_PER_CALL = 1000
MAX_REASON_LENGTH = 2000


@strawberry.input(description="The publisher of an ingested article.")
class SourceInput:
    domain: str | None = strawberry.field(
        default=None, description="Its web domain; taken from the article URL when absent."
    )
    name: str | None = strawberry.field(default=None, description="Its name (first one wins).")
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2 code.")


@strawberry.input(description="The lead image of an ingested article.")
class ImageInput:
    url: str | None = strawberry.field(default=None, description="Address of the image.")
    credit: str | None = strawberry.field(default=None, description="Photographer or agency.")
    caption: str | None = strawberry.field(default=None, description="Caption.")
    alt: str | None = strawberry.field(default=None, description="Alternative text.")
    width: int | None = strawberry.field(default=None, description="Width in pixels.")
    height: int | None = strawberry.field(default=None, description="Height in pixels.")


@strawberry.input(description="An entity the partner tagged the article with.")
class EntityRefInput:
    name: str | None = strawberry.field(default=None, description="Its name (required).")
    kind: str | None = strawberry.field(
        default=None, description="PERSON, ORGANIZATION, PLACE, EVENT, PRODUCT or OTHER."
    )
    wikidata_id: str | None = strawberry.field(default=None, description="Its Wikidata id (Q…).")
    salience: float | None = strawberry.field(
        default=None, description="How central it is to the article, 0 to 1 (default 0.5)."
    )


@strawberry.input(description="An article to create or update; matched by its canonical URL.")
class ArticleInput:
    url: str | None = strawberry.field(default=None, description="Its URL (required).")
    canonical_url: str | None = strawberry.field(
        default=None, description="The page's rel=canonical URL, when known."
    )
    title: str | None = strawberry.field(default=None, description="The headline (required).")
    summary: str | None = strawberry.field(
        default=None, description="A short summary; HTML is reduced to text."
    )
    body: str | None = strawberry.field(
        default=None, description="The full text, plain or HTML (reduced to text)."
    )
    authors: list[str] | None = strawberry.field(default=None, description="Author names.")
    published_at: str | None = strawberry.field(
        default=None,
        description="RFC 3339 date-time with offset, or a date (00:00 UTC). "
        "Absent: the ingest time, flagged as estimated.",
    )
    language: str | None = strawberry.field(
        default=None, description="ISO 639-1 code; detected from the text when absent."
    )
    section: str | None = strawberry.field(default=None, description="The publisher's section.")
    tags: list[str] | None = strawberry.field(default=None, description="The publisher's tags.")
    source: SourceInput | None = strawberry.field(default=None, description="The publisher.")
    image: ImageInput | None = strawberry.field(default=None, description="The lead image.")
    external_id: str | None = strawberry.field(
        default=None, description="The partner's own id for the article."
    )
    entities: list[EntityRefInput] | None = strawberry.field(
        default=None, description="The partner's own entity tags, merged with what we link."
    )


@strawberry.enum(description="What ingest did with an item.")
class IngestStatus(enum.Enum):
    CREATED = strawberry.enum_value("CREATED", description="Stored as a new article.")
    UPDATED = strawberry.enum_value("UPDATED", description="An existing article changed.")
    UNCHANGED = strawberry.enum_value("UNCHANGED", description="Same as stored; nothing written.")
    REJECTED = strawberry.enum_value("REJECTED", description="Not stored; see `errors`.")


@strawberry.type(description="Why an item was rejected.")
class IngestError:
    path: str = strawberry.field(description="The offending field, e.g. articles[3].publishedAt.")
    code: str = strawberry.field(
        description="A stable code: BAD_INPUT, LIMIT_EXCEEDED, FORBIDDEN (not the key's "
        "source, or another key's article) or REMOVED (a URL of an article taken down)."
    )
    message: str = strawberry.field(description="What is wrong, for a person.")


@strawberry.type(description="The outcome of one ingested item, in input order.")
class IngestResult:
    index: int = strawberry.field(description="The item's position in the input, from 0.")
    status: IngestStatus = strawberry.field(description="What happened to it.")
    errors: list[IngestError] = strawberry.field(description="Why it was rejected (else empty).")
    article_id: strawberry.Private[int | None]

    @strawberry.field(description="The stored article (null when rejected).")
    async def article(self, info: Info) -> Article | None:
        if self.article_id is None:
            return None
        record = await info.context.loaders.article.load(self.article_id)
        return Article.from_record(record) if record else None


@strawberry.enum(description="What a takedown did with one requested article.")
class TakedownStatus(enum.Enum):
    REMOVED = strawberry.enum_value("REMOVED", description="Removed now; see `tombstone`.")
    ALREADY_REMOVED = strawberry.enum_value(
        "ALREADY_REMOVED", description="It had been removed before; see `tombstone`."
    )
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="No article has that id or URL.")
    REJECTED = strawberry.enum_value("REJECTED", description="Not removed; see `errors`.")


@strawberry.type(description="The outcome of one requested takedown, in input order.")
class TakedownResult:
    index: int = strawberry.field(
        description="The item's position in the input: `ids` first, then `urls`, from 0."
    )
    status: TakedownStatus = strawberry.field(description="What happened to it.")
    tombstone: Tombstone | None = strawberry.field(
        description="What remains of the removed article (null unless removed)."
    )
    errors: list[IngestError] = strawberry.field(
        description="Why it was rejected: BAD_INPUT (a malformed id or URL) or FORBIDDEN "
        "(another key's article)."
    )


@strawberry.input(
    description="A catalogue entity to create or update (matched by Wikidata id, then name)."
)
class EntityInput:
    name: str = strawberry.field(description="The preferred name.")
    kind: EntityKind = strawberry.field(description="What kind of thing it is.")
    aliases: list[str] | None = strawberry.field(
        default=None,
        description="Other names (short forms, other languages); added, never removed.",
    )
    wikidata_id: str | None = strawberry.field(default=None, description="Its Wikidata id (Q…).")
    description: str | None = strawberry.field(default=None, description="A short description.")


def _plain(value: Any) -> Any:
    """A strawberry input as the JSON-shaped dict the pipeline reads (camelCase keys)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(value, "__strawberry_definition__"):
        result = {}
        for field in value.__strawberry_definition__.fields:
            item = getattr(value, field.python_name)
            if item is not None:
                result[field.graphql_name or _camel(field.python_name)] = _plain(item)
        return result
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _result(result: ItemResult) -> IngestResult:
    return IngestResult(
        index=result.index,
        status=IngestStatus[result.status],
        errors=[IngestError(path=e.path, code=e.code, message=e.message) for e in result.errors],
        article_id=result.article_id,
    )


@strawberry.type(description="Write articles and manage the entity catalogue.")
class Mutation:
    @strawberry.mutation(
        description="Create or update articles, idempotently: one result per input, in order. "
        "At most 1,000 per call (use POST /v1/ingest for streams). Needs an ingest or admin key."
    )
    async def ingest_articles(
        self,
        info: Info,
        articles: Annotated[list[ArticleInput], strawberry.argument(description="The articles.")],
    ) -> list[IngestResult]:
        writer = current_principal(info.context.settings)
        require(writer, Role.INGEST)
        limit = info.context.settings.ingest_max_items
        if len(articles) > limit:
            raise LimitExceeded(
                f"`articles` takes at most {limit} items per call, got {len(articles)}; "
                "split the batch or stream it to POST /v1/ingest"
            )
        info.context.read_own_writes()
        linker = await info.context.linker()
        results = await ingest_batch(
            info.context.db, [_plain(a) for a in articles], linker=linker, writer=writer
        )
        return [_result(r) for r in results]

    @strawberry.mutation(
        description="Create or update catalogue entities; the entities, in input order. "
        "Needs an admin key."
    )
    async def upsert_entities(
        self,
        info: Info,
        entities: Annotated[list[EntityInput], strawberry.argument(description="The entities.")],
    ) -> list[Entity]:
        require(current_principal(info.context.settings), Role.ADMIN)
        if len(entities) > MAX_ENTITIES_PER_CALL:
            raise LimitExceeded(f"`entities` takes at most {MAX_ENTITIES_PER_CALL} items per call")
        items = []
        for i, entity in enumerate(entities):
            if not entity.name.strip():
                raise BadInput(f"entities[{i}].name must not be empty")
            items.append(_plain(entity))
        info.context.read_own_writes()
        ids = await load_catalogue(info.context.db, items)
        info.context.catalogue_changed()
        records = await info.context.loaders.entity.load_many(ids)
        return [Entity.from_record(r) for r in records if r is not None]

    @strawberry.mutation(
        description="Merge entities into one: their mentions and aliases move to `into`, and "
        "their ids and slugs keep resolving to it. Returns the merged entity. Needs an admin key."
    )
    async def merge_entities(
        self,
        info: Info,
        into: Annotated[strawberry.ID, strawberry.argument(description="The entity that stays.")],
        from_: Annotated[
            list[strawberry.ID],
            strawberry.argument(name="from", description="The entities merged into it."),
        ],
    ) -> Entity:
        require(current_principal(info.context.settings), Role.ADMIN)
        target = decode_typed_id(into, "Entity")
        sources = [decode_typed_id(value, "Entity") for value in from_]
        if not sources:
            raise BadInput("`from` must name at least one entity")
        info.context.read_own_writes()
        if not await merge_catalogue_entities(info.context.db, target, sources):
            raise BadInput("`into` and every `from` must be existing entities")
        info.context.catalogue_changed()
        record = await info.context.loaders.entity.load(target)
        assert record is not None
        return Entity.from_record(record)

    @strawberry.mutation(
        description="Take articles down (legal removals): their content is deleted at once from "
        "every read, search and list, a tombstone (id, URLs, time, reason) remains, the change "
        "feed reports them REMOVED, and ingesting any of their URLs is refused until an admin "
        "restores them. One result per requested article, `ids` first, then `urls`. Needs an "
        "admin key, or the ingest key that wrote the articles last."
    )
    async def delete_articles(
        self,
        info: Info,
        reason: Annotated[
            str, strawberry.argument(description="Why they are removed (kept in the tombstone).")
        ],
        ids: Annotated[
            list[strawberry.ID] | None, strawberry.argument(description="Article global ids.")
        ] = None,
        urls: Annotated[
            list[str] | None, strawberry.argument(description="Any URLs of the articles.")
        ] = None,
    ) -> list[TakedownResult]:
        principal = current_principal(info.context.settings)
        require(principal, Role.INGEST)
        requested: list[str] = [*(ids or []), *(urls or [])]
        if not requested:
            raise BadInput("give the articles to remove as `ids` or `urls`")
        if len(requested) > MAX_TAKEDOWNS_PER_CALL:
            raise LimitExceeded(f"at most {MAX_TAKEDOWNS_PER_CALL} articles per call")
        if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
            raise BadInput(f"`reason` must be 1 to {MAX_REASON_LENGTH} characters")
        info.context.read_own_writes()
        db = info.context.db
        targets: list[int | str | BadInput] = []  # an article id, a URL to resolve, or why not
        for i, value in enumerate(requested):
            try:
                if i < len(ids or []):
                    targets.append(decode_typed_id(value, "Article"))
                else:
                    targets.append(canonicalize_url(value))
            except BadInput as exc:
                targets.append(exc)
        by_url = await resolve_article_urls(db, [t for t in targets if isinstance(t, str)])
        article_ids = [by_url.get(t) if isinstance(t, str) else t for t in targets]
        found = [i for i in article_ids if isinstance(i, int)]
        owner = principal.key_id if principal.is_scoped else None
        outcomes = await remove_articles(
            db, found, reason.strip(), removed_by=principal.key_id, owner=owner
        )
        results = []
        for index, (value, target) in enumerate(zip(requested, article_ids, strict=True)):
            path = f"ids[{index}]" if index < len(ids or []) else f"urls[{index - len(ids or [])}]"
            if isinstance(target, BadInput):
                error = IngestError(path=path, code=target.code, message=target.message)
                results.append(_takedown(index, "REJECTED", errors=[error]))
            elif target is None:
                results.append(_takedown(index, "NOT_FOUND"))
            elif (outcome := outcomes[target]).status == "FORBIDDEN":
                message = (
                    f"{value} was last written with another API key; only that key or an "
                    "admin may remove it"
                )
                error = IngestError(path=path, code="FORBIDDEN", message=message)
                results.append(_takedown(index, "REJECTED", errors=[error]))
            else:
                tombstone = Tombstone.from_record(outcome.tombstone) if outcome.tombstone else None
                results.append(_takedown(index, outcome.status, tombstone))
        return results

    @strawberry.mutation(
        description="Allow removed articles to be ingested again (given any of their URLs); "
        "their tombstones stay, with `restoredAt` set. The content is not brought back: "
        "ingest it again (it gets a new id). Needs an admin key."
    )
    async def restore_articles(
        self,
        info: Info,
        urls: Annotated[list[str], strawberry.argument(description="URLs of removed articles.")],
    ) -> list[Tombstone]:
        require(current_principal(info.context.settings), Role.ADMIN)
        if len(urls) > MAX_TAKEDOWNS_PER_CALL:
            raise LimitExceeded(f"at most {MAX_TAKEDOWNS_PER_CALL} URLs per call")
        info.context.read_own_writes()
        restored = await restore_urls(info.context.db, [canonicalize_url(u) for u in urls])
        return [Tombstone.from_record(record) for record in restored]

    @strawberry.mutation(
        description="Keep an article out of related-story lists (or let it back in). Returns "
        "the article, null when unknown. Needs an admin key."
    )
    async def set_exclude_from_related(
        self,
        info: Info,
        article: Annotated[strawberry.ID, strawberry.argument(description="The article.")],
        exclude: Annotated[
            bool, strawberry.argument(description="True: never list it as related.")
        ] = True,
    ) -> Article | None:
        require(current_principal(info.context.settings), Role.ADMIN)
        article_id = decode_typed_id(article, "Article")
        info.context.read_own_writes()
        if not await stories.set_exclude_from_related(info.context.db, article_id, exclude):
            return None
        record = await info.context.loaders.article.load(article_id)
        return Article.from_record(record) if record else None

    @strawberry.mutation(
        description="Mark a source as a wire service (news agency) or not: a wire service's "
        "copy of a syndicated text is its original. Returns the source, null when unknown. "
        "Needs an admin key."
    )
    async def set_source_wire_service(
        self,
        info: Info,
        source: Annotated[strawberry.ID, strawberry.argument(description="The source.")],
        is_wire_service: Annotated[
            bool, strawberry.argument(description="Whether it is a wire service.")
        ] = True,
    ) -> Source | None:
        require(current_principal(info.context.settings), Role.ADMIN)
        source_id = decode_typed_id(source, "Source")
        info.context.read_own_writes()
        if not await stories.set_wire_service(info.context.db, source_id, is_wire_service):
            return None
        record = await info.context.loaders.source.load(source_id)
        return Source.from_record(record) if record else None


def _takedown(
    index: int,
    status: str,
    tombstone: Tombstone | None = None,
    errors: list[IngestError] | None = None,
) -> TakedownResult:
    return TakedownResult(
        index=index, status=TakedownStatus[status], tombstone=tombstone, errors=errors or []
    )
