"""The OpenAPI description of the REST reads (`service/rest/reads.py`), merged into
`/openapi.json` by `service/rest/openapi.py`."""

from __future__ import annotations

from typing import Any, Final

from service.ingest.pipeline import ENTITY_KINDS

__all__ = ["OPENAPI_PATHS", "OPENAPI_SCHEMAS"]


def _param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_ID_PARAM: Final = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The article's global id (as in GraphQL).",
    "schema": {"type": "string"},
}
_LIMIT: Final = _param("limit", "Page size, 1–100 (default 20).", type="integer", minimum=1)
_CURSOR: Final = _param("cursor", "Continue after this cursor (a page's `pageInfo.endCursor`).")


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description + " With `ETag` and `Cache-Control`.",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _fail(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReadError"}}},
    }


_COMMON_RESPONSES: Final = {
    "304": {"description": "Not modified: `If-None-Match` named the current ETag."},
    "400": _fail(
        "A bad id, cursor, date or filter (BAD_INPUT, BAD_CURSOR), or a limit over "
        "100 (LIMIT_EXCEEDED)."
    ),
    "503": _fail("The database cannot be reached now (SERVICE_UNAVAILABLE); retry."),
}


def _get(op_id: str, summary: str, params: list[dict[str, Any]], ok: dict[str, Any],
         **more: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "get": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["reads"],
            "parameters": params,
            "responses": {"200": ok, **_COMMON_RESPONSES, **more},
        }
    }


_NOT_FOUND: Final = _fail("No such article (NOT_FOUND).")
_GONE: Final = _fail("The article was taken down (REMOVED); `tombstone` says when and why.")

OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/v1/articles": _get(
        "listArticles",
        "One article by URL, or a cursor-paged list of articles",
        [
            _param("url", "Any URL of the article (canonicalised); answers one Article."),
            _param("source", "A source domain or id; repeat for any of several."),
            _param("entity", "An entity slug or id; repeat for any of several."),
            _param("section", "A section; repeat for any of several."),
            _param("language", "A language code; repeat for any of several."),
            _param("since", "Published at or after (RFC 3339 with offset, or a date)."),
            _param("until", "Published before (RFC 3339 with offset, or a date)."),
            _param("order", "newest (default) or oldest.", enum=["newest", "oldest"]),
            _CURSOR,
            _LIMIT,
        ],
        _ok("ArticlePage", "A page of articles (or, with `url`, one Article)."),
        **{"404": _NOT_FOUND, "410": _GONE},
    ),
    "/v1/articles/{id}": _get(
        "getArticle",
        "One article, with its body",
        [_ID_PARAM],
        _ok("Article", "The article."),
        **{"404": _NOT_FOUND, "410": _GONE},
    ),
    "/v1/articles/{id}/related": _get(
        "relatedArticles",
        "Articles related to one article",
        [
            _ID_PARAM,
            _param("limit", "How many, 1–50 (default 10).", type="integer"),
            _param(
                "windowDays",
                "Candidates published within this many days either side (default 30).",
                type="integer",
            ),
        ],
        _ok("RelatedArticles", "Related stories, best first, as `Article.relatedStories`."),
        **{"404": _NOT_FOUND, "410": _GONE},
    ),
    "/v1/entities": _get(
        "listEntities",
        "Entities: autocomplete with `search`, else most mentioned first",
        [
            _param("search", "The start of a name or alias, or of a word in it."),
            _param("kind", "Only this kind.", enum=sorted(ENTITY_KINDS)),
            _CURSOR,
            _LIMIT,
        ],
        _ok("EntityPage", "A page of entities."),
    ),
    "/v1/sources": _get(
        "listSources",
        "Sources by name",
        [_param("search", "Part of a name or domain."), _CURSOR, _LIMIT],
        _ok("SourcePage", "A page of sources."),
    ),
    "/v1/changes": _get(
        "listChanges",
        "The change feed: every article's latest change, in commit order",
        [
            _param("since", "Start at changes made at or after this time (ignored with cursor)."),
            _CURSOR,
            _LIMIT,
        ],
        _ok("ChangePage", "Changes, oldest first; poll again with `pageInfo.endCursor`."),
    ),
}


def _page(node: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["edges", "pageInfo"],
        "properties": {
            "edges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "cursor": {"type": "string"},
                        "node": {"$ref": f"#/components/schemas/{node}"},
                    },
                },
            },
            "pageInfo": {"$ref": "#/components/schemas/PageInfo"},
        },
    }


_NULLABLE_STRING: Final = {"type": ["string", "null"]}

OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "PageInfo": {
        "type": "object",
        "properties": {
            "hasNextPage": {"type": "boolean"},
            "hasPreviousPage": {"type": "boolean"},
            "startCursor": _NULLABLE_STRING,
            "endCursor": {
                **_NULLABLE_STRING,
                "description": "Pass as `cursor` for the next page; an empty page repeats the "
                "cursor it was asked with.",
            },
        },
    },
    "Source": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "domain": {"type": "string"},
            "country": _NULLABLE_STRING,
            "language": _NULLABLE_STRING,
            "articleCount": {"type": "integer"},
        },
    },
    "Entity": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "slug": {"type": "string"},
            "kind": {"type": "string", "enum": sorted(ENTITY_KINDS)},
            "wikidataId": _NULLABLE_STRING,
            "description": _NULLABLE_STRING,
            "articleCount": {"type": "integer"},
        },
    },
    "Article": {
        "type": "object",
        "description": "Field names as in GraphQL; `body` only in single-article answers and "
        "in the change feed.",
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "canonicalUrl": {"type": "string"},
            "title": {"type": "string"},
            "summary": _NULLABLE_STRING,
            "body": _NULLABLE_STRING,
            "authors": {"type": "array", "items": {"type": "object"}},
            "publishedAt": {"type": "string", "format": "date-time"},
            "publishedAtEstimated": {"type": "boolean"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "language": {"type": "string"},
            "section": _NULLABLE_STRING,
            "tags": {"type": "array", "items": {"type": "string"}},
            "image": {"type": ["object", "null"]},
            "source": {"$ref": "#/components/schemas/Source"},
            "entities": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Tombstone": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "canonicalUrl": {"type": "string"},
            "urls": {"type": "array", "items": {"type": "string"}},
            "reason": {"type": "string"},
            "removedAt": {"type": "string", "format": "date-time"},
            "restoredAt": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Change": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer", "description": "Larger means committed later."},
            "kind": {"type": "string", "enum": ["CREATED", "UPDATED", "REMOVED"]},
            "changedAt": {"type": "string", "format": "date-time"},
            "article": {"oneOf": [{"$ref": "#/components/schemas/Article"}, {"type": "null"}]},
            "tombstone": {"oneOf": [{"$ref": "#/components/schemas/Tombstone"}, {"type": "null"}]},
        },
    },
    "ArticlePage": _page("Article"),
    "EntityPage": _page("Entity"),
    "SourcePage": _page("Source"),
    "ChangePage": _page("Change"),
    "RelatedArticles": {
        "type": "object",
        "required": ["relatedStories"],
        "properties": {
            "relatedStories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["article", "score", "reasons"],
                    "properties": {
                        "article": {"$ref": "#/components/schemas/Article"},
                        "score": {"type": "number"},
                        "reasons": {
                            "type": "object",
                            "properties": {
                                "sharedEntities": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Entity"},
                                },
                                "textSimilarity": {"type": "number"},
                                "timeGapHours": {"type": ["number", "null"]},
                                "relation": {
                                    "type": "string",
                                    "enum": ["SAME_STORY", "DUPLICATE", "RELATED"],
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "ReadError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [
                            "BAD_INPUT",
                            "BAD_CURSOR",
                            "LIMIT_EXCEEDED",
                            "NOT_FOUND",
                            "REMOVED",
                            "SERVICE_UNAVAILABLE",
                            "INTERNAL_SERVER_ERROR",
                        ],
                    },
                    "message": {"type": "string"},
                },
            },
            "tombstone": {"$ref": "#/components/schemas/Tombstone"},
        },
    },
}
