"""Cursors and page sizes for GraphQL connections (shared with REST: `service.cursors`)."""

from __future__ import annotations

from service.cursors import decode_cursor, encode_cursor, page_size

__all__ = ["decode_cursor", "encode_cursor", "page_size"]
