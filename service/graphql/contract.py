"""The schema contract: the exported SDL against the last released one.

A breaking change (a removed field, a changed type, …) fails the check unless it removes a
field that the released schema had already deprecated: clients get one release of warning.
"""

from __future__ import annotations

import re

from graphql import GraphQLObjectType, GraphQLSchema, build_schema
from graphql.utilities import BreakingChange, BreakingChangeType, find_schema_changes

__all__ = ["breaking_changes"]

_REMOVED_FIELD = re.compile(r"^Field (\w+)\.(\w+) was removed\.$")


def _was_deprecated(schema: GraphQLSchema, type_name: str, field_name: str) -> bool:
    named = schema.get_type(type_name)
    if not isinstance(named, GraphQLObjectType):
        return False
    field = named.fields.get(field_name)
    return field is not None and field.deprecation_reason is not None


def breaking_changes(released_sdl: str, current_sdl: str) -> list[str]:
    """Descriptions of the changes that would break clients of the released schema."""
    released, current = build_schema(released_sdl), build_schema(current_sdl)
    problems = []
    for change in find_schema_changes(released, current):
        if not isinstance(change, BreakingChange):
            continue
        removed = _REMOVED_FIELD.match(change.description)
        if (
            change.type is BreakingChangeType.FIELD_REMOVED
            and removed
            and _was_deprecated(released, removed[1], removed[2])
        ):
            continue
        problems.append(change.description)
    return problems
