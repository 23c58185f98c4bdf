"""Settings: the only place that reads the environment.

`Settings.from_environ(env)` takes any mapping, so tests pass a dict instead of patching
`os.environ`. Every setting is documented in the README with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Self, TypeVar, cast

__all__ = ["ConfigError", "Settings", "default_data_dir"]

Environment = Literal["development", "production"]
AuthMode = Literal["off", "required"]
IndexerMode = Literal["process", "thread", "off"]
_Choice = TypeVar("_Choice", bound=str)


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def default_data_dir(env: Mapping[str, str], *, is_root: bool) -> Path:
    """Where the embedded database lives when `NEWSGRAPH_DATA_DIR` is unset.

    As root the server runs as the `postgres` user, which cannot enter `/root`, so the data
    goes to `/var/lib/newsgraph`; otherwise to the user's XDG data directory.
    """
    if is_root:
        return Path("/var/lib/newsgraph")
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local/share")
    return Path(base) / "newsgraph"


def _int(env: Mapping[str, str], name: str, default: int, *, low: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not zero) or value != value:
        raise ConfigError(f"{name} must be {'0 or more' if zero else 'positive'}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(
    env: Mapping[str, str], name: str, default: _Choice, allowed: tuple[_Choice, ...]
) -> _Choice:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    for option in allowed:
        if raw == option:
            return option
    raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")


def _indexer_mode(env: Mapping[str, str]) -> IndexerMode:
    """NEWSGRAPH_RELATED_INDEXER; it was a boolean before the indexer process, and a boolean
    keeps its meaning (true: in each server process, false: none)."""
    name = "NEWSGRAPH_RELATED_INDEXER"
    raw = (env.get(name) or "").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return "thread"
    if raw in {"0", "false", "no"}:
        return "off"
    return cast(IndexerMode, _choice({name: raw}, name, "process", ("process", "thread", "off")))


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of one Newsgraph process; immutable once built."""

    database_url: str | None = None
    database_replica_url: str | None = None
    env: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    auth: AuthMode = "off"
    graphiql: bool = True
    data_dir: Path = field(default_factory=lambda: Path("newsgraph-data"))
    pg_bindir: Path | None = None
    pg_run_as: str | None = None
    pg_bin_cache: Path | None = None
    pool_min_size: int = 2
    pool_max_size: int = 10
    pool_acquire_timeout: float = 5.0
    statement_timeout_ms: int = 5000
    write_timeout_ms: int = 60000
    statement_cache_size: int = 100
    default_page_size: int = 20
    max_page_size: int = 100
    count_cap: int = 10_000
    max_query_depth: int = 12
    max_body_bytes: int = 10_485_760
    ingest_max_items: int = 1000
    ingest_batch_size: int = 500
    # Batches of one NDJSON stream written at once (each on its own connection).
    ingest_writers: int = 2
    ingest_max_line_bytes: int = 1_048_576
    # Access and abuse protection (docs/access.md).
    key_secret: str | None = None
    anonymous_reads: bool = False
    key_cache_ttl: float = 5.0
    rate_limit_storage: str = "memory://"
    rate_limit_anonymous: int = 3_000
    rate_limit_reader: int = 30_000
    rate_limit_ingest: int = 30_000
    rate_limit_admin: int = 60_000
    max_query_cost: int = 1_000
    max_query_nodes: int = 50_000
    max_query_aliases: int = 30
    max_query_tokens: int = 2_000
    trusted_documents_only: bool = False
    apq_cache_size: int = 1_000
    cache_max_age: int = 30
    compiled_operations: bool = True
    response_cache: bool = False
    # Who indexes related stories queued by ingest and refreshes the stored lists: a process
    # of their own beside `newsgraph serve`'s workers (service.related.worker), a thread of
    # each server process (service.related.indexer), or nobody here.
    related_indexer: IndexerMode = "process"
    # Port of the indexer process's own Prometheus endpoint (None: none).
    indexer_metrics_port: int | None = None
    # Share of each process's wall time the related-lists refresher may use (0: none).
    related_refresh_percent: int = 25
    related_index_percent_ingesting: int = 100
    # Seconds between folds of the article counters' deltas (service.db.counters); 0: none.
    count_fold_seconds: float = 1.0
    # Operability (docs/operating.md).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # prometheus_client's multiprocess mode, for --workers N: the library reads this variable
    # itself too, so both always agree.
    metrics_multiproc_dir: Path | None = None
    # OpenTelemetry tracing is on when an exporter is configured; the SDK reads the other
    # OTEL_* variables (sampler, service name, headers) itself.
    otel_traces_exporter: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "newsgraph"

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Self:
        """Build settings from `env` (default: the process environment), failing fast."""
        env = os.environ if env is None else env
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        environment = cast(
            Environment,
            _choice(env, "NEWSGRAPH_ENV", "development", ("development", "production")),
        )
        settings = cls(
            database_url=env.get("DATABASE_URL") or None,
            database_replica_url=env.get("DATABASE_REPLICA_URL") or None,
            env=environment,
            host=env.get("NEWSGRAPH_HOST") or "127.0.0.1",
            port=_int(env, "NEWSGRAPH_PORT", 8000),
            workers=_int(env, "NEWSGRAPH_WORKERS", 1),
            auth=cast(AuthMode, _choice(env, "NEWSGRAPH_AUTH", "off", ("off", "required"))),
            graphiql=_bool(env, "NEWSGRAPH_GRAPHIQL", environment == "development"),
            data_dir=_path(env, "NEWSGRAPH_DATA_DIR") or default_data_dir(env, is_root=is_root),
            pg_bindir=_path(env, "NEWSGRAPH_PG_BINDIR"),
            pg_run_as=env.get("NEWSGRAPH_PG_RUN_AS") or None,
            pg_bin_cache=_path(env, "NEWSGRAPH_PG_BIN_CACHE"),
            pool_min_size=_int(env, "NEWSGRAPH_POOL_MIN_SIZE", 2, low=0),
            pool_max_size=_int(env, "NEWSGRAPH_POOL_MAX_SIZE", 10),
            pool_acquire_timeout=_float(env, "NEWSGRAPH_POOL_ACQUIRE_TIMEOUT", 5.0),
            statement_timeout_ms=_int(env, "NEWSGRAPH_STATEMENT_TIMEOUT_MS", 5000),
            write_timeout_ms=_int(env, "NEWSGRAPH_WRITE_TIMEOUT_MS", 60000),
            statement_cache_size=_int(env, "NEWSGRAPH_STATEMENT_CACHE_SIZE", 100, low=0),
            default_page_size=_int(env, "NEWSGRAPH_DEFAULT_PAGE_SIZE", 20),
            max_page_size=_int(env, "NEWSGRAPH_MAX_PAGE_SIZE", 100),
            count_cap=_int(env, "NEWSGRAPH_COUNT_CAP", 10_000),
            max_query_depth=_int(env, "NEWSGRAPH_MAX_QUERY_DEPTH", 12),
            max_body_bytes=_int(env, "NEWSGRAPH_MAX_BODY_BYTES", 10_485_760),
            ingest_max_items=_int(env, "NEWSGRAPH_INGEST_MAX_ITEMS", 1000),
            ingest_batch_size=_int(env, "NEWSGRAPH_INGEST_BATCH_SIZE", 500),
            ingest_writers=_int(env, "NEWSGRAPH_INGEST_WRITERS", 2),
            ingest_max_line_bytes=_int(env, "NEWSGRAPH_INGEST_MAX_LINE_BYTES", 1_048_576),
            key_secret=env.get("NEWSGRAPH_KEY_SECRET") or None,
            anonymous_reads=_bool(env, "NEWSGRAPH_ANONYMOUS_READS", False),
            key_cache_ttl=_float(env, "NEWSGRAPH_KEY_CACHE_TTL", 5.0),
            rate_limit_storage=env.get("NEWSGRAPH_RATE_LIMIT_STORAGE") or "memory://",
            rate_limit_anonymous=_int(env, "NEWSGRAPH_RATE_LIMIT_ANONYMOUS", 3_000, low=0),
            rate_limit_reader=_int(env, "NEWSGRAPH_RATE_LIMIT_READER", 30_000, low=0),
            rate_limit_ingest=_int(env, "NEWSGRAPH_RATE_LIMIT_INGEST", 30_000, low=0),
            rate_limit_admin=_int(env, "NEWSGRAPH_RATE_LIMIT_ADMIN", 60_000, low=0),
            max_query_cost=_int(env, "NEWSGRAPH_MAX_QUERY_COST", 1_000),
            max_query_nodes=_int(env, "NEWSGRAPH_MAX_QUERY_NODES", 50_000),
            max_query_aliases=_int(env, "NEWSGRAPH_MAX_QUERY_ALIASES", 30, low=0),
            max_query_tokens=_int(env, "NEWSGRAPH_MAX_QUERY_TOKENS", 2_000),
            trusted_documents_only=_bool(env, "NEWSGRAPH_TRUSTED_DOCUMENTS_ONLY", False),
            apq_cache_size=_int(env, "NEWSGRAPH_APQ_CACHE_SIZE", 1_000, low=0),
            cache_max_age=_int(env, "NEWSGRAPH_CACHE_MAX_AGE", 30, low=0),
            compiled_operations=_bool(env, "NEWSGRAPH_COMPILED_OPERATIONS", True),
            response_cache=_bool(env, "NEWSGRAPH_RESPONSE_CACHE", False),
            related_indexer=_indexer_mode(env),
            indexer_metrics_port=_int(env, "NEWSGRAPH_INDEXER_METRICS_PORT", 0, low=0) or None,
            related_refresh_percent=_int(env, "NEWSGRAPH_RELATED_REFRESH_PERCENT", 25, low=0),
            related_index_percent_ingesting=_int(
                env, "NEWSGRAPH_RELATED_INDEX_PERCENT_INGESTING", 100, low=1
            ),
            count_fold_seconds=_float(env, "NEWSGRAPH_COUNT_FOLD_SECONDS", 1.0, zero=True),
            log_level=_choice(
                env, "NEWSGRAPH_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            log_format=_choice(env, "NEWSGRAPH_LOG_FORMAT", "json", ("json", "text")),
            metrics_multiproc_dir=_path(env, "PROMETHEUS_MULTIPROC_DIR"),
            otel_traces_exporter=env.get("OTEL_TRACES_EXPORTER") or None,
            otel_exporter_otlp_endpoint=(
                env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or None
            ),
            otel_service_name=env.get("OTEL_SERVICE_NAME") or "newsgraph",
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject combinations that cannot work, naming the variables involved."""
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError(
                "NEWSGRAPH_POOL_MIN_SIZE must not exceed NEWSGRAPH_POOL_MAX_SIZE "
                f"({self.pool_min_size} > {self.pool_max_size})"
            )
        if self.ingest_writers > self.pool_max_size:
            raise ConfigError(
                "NEWSGRAPH_INGEST_WRITERS must not exceed NEWSGRAPH_POOL_MAX_SIZE "
                f"({self.ingest_writers} > {self.pool_max_size})"
            )
        if self.related_refresh_percent > 100:
            raise ConfigError(
                "NEWSGRAPH_RELATED_REFRESH_PERCENT must be from 0 to 100, "
                f"got {self.related_refresh_percent}"
            )
        if self.related_index_percent_ingesting > 100:
            raise ConfigError(
                "NEWSGRAPH_RELATED_INDEX_PERCENT_INGESTING must be from 1 to 100, "
                f"got {self.related_index_percent_ingesting}"
            )
        if self.default_page_size > self.max_page_size:
            raise ConfigError(
                "NEWSGRAPH_DEFAULT_PAGE_SIZE must not exceed NEWSGRAPH_MAX_PAGE_SIZE "
                f"({self.default_page_size} > {self.max_page_size})"
            )
        for name, url in (
            ("DATABASE_URL", self.database_url),
            ("DATABASE_REPLICA_URL", self.database_replica_url),
        ):
            if url and not url.startswith(("postgresql://", "postgres://")):
                raise ConfigError(f"{name} must be a postgresql:// URL")

    def with_database(self, url: str) -> Self:
        """A copy pointing at `url` (used once the embedded server has started)."""
        return replace(self, database_url=url)
