"""Full-text search conditions that respect each article's language.

Each article's search_vector is built with its language's text-search configuration
(`newsgraph_ts_config` in the migrations). A query must be parsed with the same configuration
to match stems and honour `-exclusions`, so the condition has one arm per configuration:
PostgreSQL answers it with a BitmapOr over the one GIN index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["LANGUAGE_CONFIGS", "search_condition", "ts_config"]

# Mirrors newsgraph_ts_config() in migrations/versions/0001; a test keeps the two equal.
LANGUAGE_CONFIGS: Final[dict[str, str]] = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "fi": "finnish", "fr": "french", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "lt": "lithuanian", "nb": "norwegian", "nn": "norwegian",
    "no": "norwegian", "nl": "dutch", "pt": "portuguese", "ro": "romanian", "ru": "russian",
    "sv": "swedish", "tr": "turkish",
}  # fmt: skip
ALL_CONFIGS: Final = (*sorted(set(LANGUAGE_CONFIGS.values())), "simple")


def ts_config(language: str) -> str:
    """The text-search configuration for a language code (as the database computes it)."""
    return LANGUAGE_CONFIGS.get(language.split("-")[0].lower(), "simple")


def search_condition(param: str, languages: Sequence[str] = ()) -> str:
    """SQL matching articles (alias `a`) against the websearch text in `param`."""
    configs = sorted({ts_config(lang) for lang in languages}) if languages else ALL_CONFIGS
    arms = [
        f"(newsgraph_ts_config(a.language) = '{config}'::regconfig"
        f" AND a.search_vector @@ websearch_to_tsquery('{config}', {param}))"
        for config in configs
    ]
    return "(" + " OR ".join(arms) + ")"
