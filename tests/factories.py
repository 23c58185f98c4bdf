"""Article inputs with valid defaults, for tests that ingest their own data."""

from __future__ import annotations

import itertools
from typing import Any

_serial = itertools.count(1)


def article_input(**overrides: Any) -> dict[str, Any]:
    """An ingestable article (ArticleInput shape) with a unique URL unless one is given."""
    n = next(_serial)
    item: dict[str, Any] = {
        "url": f"https://factory.example/news/story-{n}",
        "title": f"Factory story {n}",
        "summary": "A short summary written for a test.",
        "publishedAt": "2025-01-01T12:00:00Z",
        "language": "en",
        "section": "world",
        "source": {"domain": "factory.example", "name": "Factory News", "country": "NO"},
        "entities": [],
    }
    item.update(overrides)
    return item
