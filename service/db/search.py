"""Full-text search conditions that respect each article's language.

Each article's search_vector is built with its language's text-search configuration
(`newsgraph_ts_config` in the migrations). A query must be parsed with the same configuration
to match stems and honour `-exclusions`, so the condition has one arm per configuration in
use: PostgreSQL answers it with a BitmapOr over the one GIN index. The configurations in use
are read per search (a skip scan over the language index: a few index probes), because an arm
per known language (20) misleads the planner's row estimates and costs milliseconds to plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from service.db.pool import Database

__all__ = [
    "LANGUAGE_CONFIGS",
    "SearchConfigs",
    "fetch_languages",
    "search_condition",
    "search_configs",
    "ts_config",
]

# The distinct article languages, by skipping through articles_language_feed_idx.
SELECT_LANGUAGES: Final = """
WITH RECURSIVE present(language) AS (
    (SELECT language FROM articles ORDER BY language LIMIT 1)
    UNION ALL
    SELECT (SELECT a.language FROM articles a WHERE a.language > p.language
            ORDER BY a.language LIMIT 1)
    FROM present p WHERE p.language IS NOT NULL
)
SELECT language FROM present WHERE language IS NOT NULL
"""

# Mirrors newsgraph_ts_config() in migrations/versions/0001; a test keeps the two equal.
LANGUAGE_CONFIGS: Final[dict[str, str]] = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "fi": "finnish", "fr": "french", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "lt": "lithuanian", "nb": "norwegian", "nn": "norwegian",
    "no": "norwegian", "nl": "dutch", "pt": "portuguese", "ro": "romanian", "ru": "russian",
    "sv": "swedish", "tr": "turkish",
}  # fmt: skip


def ts_config(language: str) -> str:
    """The text-search configuration for a language code (as the database computes it)."""
    return LANGUAGE_CONFIGS.get(language.split("-")[0].lower(), "simple")


# (configuration, the article languages it serves)
SearchConfigs = tuple[tuple[str, tuple[str, ...]], ...]


async def fetch_languages(db: Database) -> tuple[str, ...]:
    """The languages articles are written in (a few index probes)."""
    return tuple(row["language"] for row in await db.fetch(SELECT_LANGUAGES))


def search_configs(present: Sequence[str], wanted: Sequence[str] = ()) -> SearchConfigs:
    """The configurations to search with, each with its languages (only `wanted` ones if given)."""
    by_config: dict[str, list[str]] = {}
    for language in sorted(set(present) & set(wanted) if wanted else set(present)):
        by_config.setdefault(ts_config(language), []).append(language)
    return tuple((config, tuple(langs)) for config, langs in sorted(by_config.items()))


def search_condition(text: str, configs: SearchConfigs, param: Callable[[object, str], str]) -> str:
    """SQL matching articles (alias `a`) against the websearch `text`.

    Each arm names its languages as a plain `a.language = ANY(...)`, whose selectivity the
    planner knows from the column statistics (a function of the language would be a guess).
    """
    if not configs:
        return "false"
    value = param(text, "")
    arms = [
        f"(a.language = ANY({param(list(languages), '::text[]')})"
        f" AND a.search_vector @@ websearch_to_tsquery('{config}', {value}))"
        for config, languages in configs
    ]
    return "(" + " OR ".join(arms) + ")"
