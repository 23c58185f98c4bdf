"""Query limits, checked before any database work, and rate limiting by query cost.

Each limit is a setting (defaults in docs/access.md); a rejection is a GraphQL error with
code `LIMIT_EXCEEDED` whose message names the limit and its value:

- tokens (`NEWSGRAPH_MAX_QUERY_TOKENS`): enforced by the parser, which stops counting there;
- aliases (`NEWSGRAPH_MAX_QUERY_ALIASES`): a validation rule, counting through fragments;
- depth (`NEWSGRAPH_MAX_QUERY_DEPTH`): a validation rule measuring each fragment once
  (it replaces strawberry's QueryDepthLimiter, which is exponential in fragment spreads);
- nodes (`NEWSGRAPH_MAX_QUERY_NODES`) and cost (`NEWSGRAPH_MAX_QUERY_COST`), computed from
  the validated document and its variables, as GitHub and Shopify do:

  * a list field asks for `first` items (its argument, else its default; a connection's
    `edges` take the connection's `first`; other lists are assumed `default_page_size`
    long; `first` counts at most `max_page_size`), and everything under it is multiplied
    by that;
  * nodes = the number of objects the answer can hold;
  * cost = the number of lists fetched: 1 per connection or list, times the sizes of the
    lists above it, plus 1 per root field; a mutation costs 10 more, plus 1 per 10 input
    items, and the selection on its results counts once (they are loaded in batches). At
    least 1.

Batching (several operations in one HTTP request) stays off (strawberry's default): a JSON
array body is refused with 400. Introspection is off when `NEWSGRAPH_ENV=production`.

The cost is then charged to the caller's budget (`service.rate_limit`): over budget, the
answer is `RATE_LIMITED` (HTTP 429 with `Retry-After`). Every answer carries
`extensions.cost = {requested, remaining, limit, resetSeconds}`; over GET, `remaining` and
`resetSeconds` are null (the `RateLimit-*` headers have them), so that equal answers are
equal bytes and HTTP caches can compare them by ETag.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    get_operation_ast,
    is_composite_type,
    parse,
    value_from_ast_untyped,
)
from strawberry.extensions import AddValidationRules, DisableIntrospection, SchemaExtension

from service.config import Settings
from service.errors import Forbidden, RateLimited, Unauthenticated
from service.rate_limit import request_access

__all__ = [
    "AliasLimit",
    "DepthLimit",
    "QueryCost",
    "TokenLimit",
    "limit_extensions",
    "query_cost",
    "reject",
    "within_limits",
]

LIMIT_EXCEEDED: Final = "LIMIT_EXCEEDED"
MUTATION_BASE_COST: Final = 10
ITEMS_PER_COST_POINT: Final = 10
_TOKEN_MESSAGE: Final = "tokens. Parsing aborted."  # noqa: S105 - graphql-core's message


def limit_error(message: str, *, code: str = LIMIT_EXCEEDED) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def reject(execution_context: Any, error: GraphQLError) -> None:
    """Answer with `error` instead of executing: strawberry then skips execution."""
    execution_context.result = ExecutionResult(data=None, errors=[error])


# --- aliases ------------------------------------------------------------------------------


def _count_aliases(document: DocumentNode) -> int:
    """Aliased fields in the document's operations, counting a fragment at each spread.

    Each fragment is counted once and reused, so repeated spreads stay linear in work
    (strawberry's MaxAliasesLimiter walks a fragment again at every spread).
    """
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, int] = {}

    def count(selection_set: SelectionSetNode | None, active: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += (1 if selection.alias else 0) + count(selection.selection_set, active)
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set, active)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in active or name not in fragments:
                    continue
                if name not in memo:
                    memo[name] = count(fragments[name].selection_set, active | {name})
                total += memo[name]
        return total

    return sum(
        count(d.selection_set, frozenset())
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


@functools.cache
def _alias_rule(max_aliases: int) -> type[ValidationRule]:
    # One class per limit, made once: the validation cache keys on the rule classes.
    class AliasLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            found = _count_aliases(context.document)
            if found > max_aliases:
                context.report_error(
                    limit_error(
                        f"The document uses {found} aliases; the limit is {max_aliases} "
                        "(NEWSGRAPH_MAX_QUERY_ALIASES)."
                    )
                )

    return AliasLimitRule


class AliasLimit(AddValidationRules):
    """At most `max_aliases` aliases per document (LIMIT_EXCEEDED)."""

    def __init__(self, max_aliases: int) -> None:
        super().__init__([_alias_rule(max_aliases)])


# --- depth --------------------------------------------------------------------------------


def _depth(document: DocumentNode, operation: OperationDefinitionNode) -> int:
    """The deepest nesting of fields (a leaf at the root is 1), through fragments.

    The same measure as strawberry's QueryDepthLimiter (introspection fields not counted),
    but each fragment is measured once: QueryDepthLimiter walks a fragment again at every
    spread, so a few hundred bytes of fragments spreading each other twice keep a worker
    busy for hours (2^n walks).
    """
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, int] = {}

    def depth(selection_set: SelectionSetNode | None, active: frozenset[str]) -> int:
        deepest = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                if selection.name.value.startswith("__"):
                    continue
                found = 1 + depth(selection.selection_set, active) if selection.selection_set else 1
            elif isinstance(selection, InlineFragmentNode):
                found = depth(selection.selection_set, active)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in active or name not in fragments:
                    continue
                if name not in memo:
                    memo[name] = depth(fragments[name].selection_set, active | {name})
                found = memo[name]
            else:  # pragma: no cover
                continue
            deepest = max(deepest, found)
        return deepest

    return depth(operation.selection_set, frozenset())


@functools.cache
def _depth_rule(max_depth: int) -> type[ValidationRule]:
    class DepthLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for definition in context.document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                found = _depth(context.document, definition)
                if found > max_depth:
                    name = definition.name.value if definition.name else "anonymous"
                    context.report_error(
                        limit_error(
                            f"The operation {name!r} is {found} levels deep; the maximum depth "
                            f"is {max_depth} (NEWSGRAPH_MAX_QUERY_DEPTH)."
                        )
                    )

    return DepthLimitRule


class DepthLimit(AddValidationRules):
    """At most `max_depth` levels of fields (LIMIT_EXCEEDED); linear in the document."""

    def __init__(self, max_depth: int) -> None:
        super().__init__([_depth_rule(max_depth)])


# --- tokens -------------------------------------------------------------------------------


class TokenLimit(SchemaExtension):
    """At most `max_tokens` tokens per document: the parser stops there (LIMIT_EXCEEDED)."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError) and _TOKEN_MESSAGE in error.message:
                error.message = (
                    f"The document has more than {self.max_tokens} tokens; the limit is "
                    f"{self.max_tokens} (NEWSGRAPH_MAX_QUERY_TOKENS)."
                )
                error.extensions = {**(error.extensions or {}), "code": LIMIT_EXCEEDED}


# --- cost ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cost:
    cost: int
    nodes: int


class _CostWalker:
    """Cost and nodes of one operation; fragments are costed once per (type, page size)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any],
        *,
        default_page_size: int,
        max_page_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables)
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self._memo: dict[tuple[str, str, int | None, OperationType | None], tuple[int, int]] = {}

    def _size(self, value: object, default: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return min(max(value, 0), self.max_page_size)
        return default

    def _argument(self, node: FieldNode, field: Any, name: str) -> object:
        for argument in node.arguments or ():
            if argument.name.value == name:
                try:
                    return value_from_ast_untyped(argument.value, self.variables)
                except (TypeError, ValueError):  # pragma: no cover - validated documents
                    return None
        definition = field.args.get(name)
        if definition is not None and definition.default_value is not None:
            return definition.default_value
        return None

    def _largest_list_argument(self, node: FieldNode) -> int:
        largest = 0
        for argument in node.arguments or ():
            value = value_from_ast_untyped(argument.value, self.variables)
            if isinstance(value, list):
                largest = max(largest, len(value))
        return largest

    def selection(
        self,
        selection_set: SelectionSetNode | None,
        parent: Any,
        page: int | None,
        active: frozenset[str] = frozenset(),
        root: OperationType | None = None,
    ) -> tuple[int, int]:
        """(cost, nodes) of a selection set resolved once under `parent`."""
        if selection_set is None:
            return 0, 0
        cost = nodes = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                c, n = self.field(selection, parent, page, active)
                if root is not None and parent.fields.get(selection.name.value) is not None:
                    c += 1  # every root field
                    if root is OperationType.MUTATION:
                        items = self._largest_list_argument(selection)
                        c += MUTATION_BASE_COST + math.ceil(items / ITEMS_PER_COST_POINT)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                c, n = self.selection(selection.selection_set, target or parent, page, active, root)
            elif isinstance(selection, FragmentSpreadNode):
                c, n = self.spread(selection.name.value, parent, page, active, root)
            else:  # pragma: no cover
                continue
            cost += c
            nodes += n
        return cost, nodes

    def spread(
        self,
        name: str,
        parent: Any,
        page: int | None,
        active: frozenset[str],
        root: OperationType | None = None,
    ) -> tuple[int, int]:
        fragment = self.fragments.get(name)
        if fragment is None or name in active:
            return 0, 0
        target = self.schema.get_type(fragment.type_condition.name.value) or parent
        key = (name, getattr(parent, "name", ""), page, root)
        if key not in self._memo:
            self._memo[key] = self.selection(
                fragment.selection_set, target, page, active | {name}, root
            )
        return self._memo[key]

    def field(
        self, node: FieldNode, parent: Any, page: int | None, active: frozenset[str]
    ) -> tuple[int, int]:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0, 0  # unions have no fields but __typename
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 0, 0  # __typename and introspection fields
        output = definition.type
        if isinstance(output, GraphQLNonNull):
            output = output.of_type
        named = get_named_type(output)
        if not is_composite_type(named):
            return 0, 0
        first = self._argument(node, definition, "first") if "first" in definition.args else None
        child_page: int | None = None
        fetch = 0
        per_item = True
        if isinstance(output, GraphQLList):
            if first is not None:
                size = self._size(first, self.max_page_size)
                fetch = 1
            elif page is not None:
                size = page  # a connection's edges
            else:
                # One result per input item (mutations), else a list's typical length.
                items = self._largest_list_argument(node)
                size = items or self.default_page_size
                fetch = 1
                # A mutation's results are loaded in batches, one statement per level
                # whatever the number of items: its cost does not multiply (its nodes do).
                per_item = not items
        else:
            size = 1
            if "first" in definition.args:  # a connection
                child_page = self._size(first, self.default_page_size)
                fetch = 1
        child_cost, child_nodes = self.selection(node.selection_set, named, child_page, active)
        cost = fetch + (size * child_cost if per_item else child_cost)
        return cost, size + size * child_nodes

    def operation(self, operation: OperationDefinitionNode) -> Cost:
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }[operation.operation]
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = value_from_ast_untyped(definition.default_value)
        cost, nodes = self.selection(
            operation.selection_set, root, None, frozenset(), operation.operation
        )
        return Cost(cost=max(cost, 1), nodes=nodes)


def within_limits(document: str, settings: Settings) -> bool:
    """Whether `document` passes the token, depth and alias limits of `settings`."""
    try:
        parsed = parse(document, max_tokens=settings.max_query_tokens)
    except GraphQLSyntaxError:
        return False
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    return _count_aliases(parsed) <= settings.max_query_aliases and all(
        _depth(parsed, operation) <= settings.max_query_depth for operation in operations
    )


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    default_page_size: int,
    max_page_size: int,
) -> Cost | None:
    """The cost and node count of the operation to run; None when there is no such operation."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    walker = _CostWalker(
        schema,
        document,
        variables or {},
        default_page_size=default_page_size,
        max_page_size=max_page_size,
    )
    return walker.operation(operation)


class QueryCost(SchemaExtension):
    """Reject queries over the node or cost limit, charge the cost, report it in `extensions`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cost: Cost | None = None
        self.report: dict[str, int | None] | None = None

    async def on_validate(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context
        if context.pre_execution_errors or context.result is not None:
            return
        assert context.graphql_document is not None
        settings = self.settings
        cost = query_cost(
            context.schema._schema,
            context.graphql_document,
            context.operation_name,
            context.variables,
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
        )
        if cost is None:
            return
        self.cost = cost
        self.report = {"requested": cost.cost, "remaining": None, "limit": None,
                       "resetSeconds": None}  # fmt: skip
        if cost.nodes > settings.max_query_nodes:
            reject(
                context,
                limit_error(
                    f"The query may return up to {cost.nodes:,} objects; the limit is "
                    f"{settings.max_query_nodes:,} (NEWSGRAPH_MAX_QUERY_NODES). Ask for smaller "
                    "pages (`first`) or fewer nested lists."
                ),
            )
            return
        if cost.cost > settings.max_query_cost:
            reject(
                context,
                limit_error(
                    f"The query costs {cost.cost:,} points; the limit is "
                    f"{settings.max_query_cost:,} per request (NEWSGRAPH_MAX_QUERY_COST). Ask for "
                    "smaller pages (`first`) or fewer nested lists."
                ),
            )
            return
        await self._charge(cost.cost)

    async def _charge(self, points: int) -> None:
        access = request_access()
        if access is None or access.limits is None:
            return
        budget = await access.limits.charge(access.principal, access.client, points)
        access.budget = budget
        access.charged = True
        if budget is None or self.report is None:
            return
        self.report["limit"] = budget.limit
        if not access.cacheable:
            self.report.update(remaining=budget.remaining, resetSeconds=budget.reset_seconds)
        if not budget.allowed:
            error = RateLimited(
                f"Rate limit exceeded: the query costs {points:,} points and "
                f"{budget.remaining:,} of {budget.limit:,} per minute are left; "
                f"retry in {budget.reset_seconds} s.",
                retry_after=budget.reset_seconds,
            )
            access.fail(error)
            reject(
                self.execution_context,
                GraphQLError(error.message, extensions={"code": error.code}),
            )

    def on_operation(self) -> Iterator[None]:
        yield
        # 401/403 when the operation failed for want of a key or a role.
        access = request_access()
        result = self.execution_context.result
        if access is None or result is None or not result.errors:
            return
        for wanted in (Unauthenticated, Forbidden):
            for error in result.errors:
                original = error.original_error
                if isinstance(original, wanted):
                    access.fail(original)
                    return

    def get_results(self) -> dict[str, Any]:
        return {"cost": dict(self.report)} if self.report is not None else {}


def limit_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Factories for the schema's `extensions` (after ErrorCodes): fresh instances per request."""
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: TokenLimit(settings.max_query_tokens),
        lambda: DepthLimit(settings.max_query_depth),
        lambda: AliasLimit(settings.max_query_aliases),
        lambda: QueryCost(settings),
    ]
    if settings.env == "production":
        extensions.append(DisableIntrospection)
    return extensions
