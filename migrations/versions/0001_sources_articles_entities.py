"""Sources, articles, entities, aliases and article-entity links.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# ISO 639-1 language codes whose PostgreSQL text-search configuration stems words; any other
# language is indexed with 'simple' (lower-cased words, no stemming).
TS_CONFIG_FUNCTION = """
CREATE FUNCTION newsgraph_ts_config(language text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE lower(split_part(language, '-', 1))
    WHEN 'ar' THEN 'arabic'::regconfig     WHEN 'da' THEN 'danish'::regconfig
    WHEN 'de' THEN 'german'::regconfig     WHEN 'el' THEN 'greek'::regconfig
    WHEN 'en' THEN 'english'::regconfig    WHEN 'es' THEN 'spanish'::regconfig
    WHEN 'fi' THEN 'finnish'::regconfig    WHEN 'fr' THEN 'french'::regconfig
    WHEN 'hu' THEN 'hungarian'::regconfig  WHEN 'id' THEN 'indonesian'::regconfig
    WHEN 'it' THEN 'italian'::regconfig    WHEN 'lt' THEN 'lithuanian'::regconfig
    WHEN 'nb' THEN 'norwegian'::regconfig  WHEN 'nn' THEN 'norwegian'::regconfig
    WHEN 'no' THEN 'norwegian'::regconfig  WHEN 'nl' THEN 'dutch'::regconfig
    WHEN 'pt' THEN 'portuguese'::regconfig WHEN 'ro' THEN 'romanian'::regconfig
    WHEN 'ru' THEN 'russian'::regconfig    WHEN 'sv' THEN 'swedish'::regconfig
    WHEN 'tr' THEN 'turkish'::regconfig
    ELSE 'simple'::regconfig
  END
$$
"""

# unaccent() is only STABLE (it reads its dictionary); pinning the dictionary makes the wrapper
# safe to mark IMMUTABLE, which generated columns and expression indexes require.
SEARCH_KEY_FUNCTION = """
CREATE FUNCTION newsgraph_search_key(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT lower(public.unaccent('public.unaccent'::regdictionary, value))
$$
"""

UPGRADE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    TS_CONFIG_FUNCTION,
    SEARCH_KEY_FUNCTION,
    """
    CREATE TABLE sources (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        domain      text NOT NULL UNIQUE CHECK (domain = lower(domain) AND domain <> ''),
        name        text NOT NULL CHECK (name <> ''),
        country     text CHECK (country ~ '^[A-Z]{2}$'),
        language    text,
        article_count integer NOT NULL DEFAULT 0,
        search_key  text GENERATED ALWAYS AS (newsgraph_search_key(name || ' ' || domain)) STORED,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX sources_name_idx ON sources (name, id)",
    "CREATE INDEX sources_search_trgm_idx ON sources USING gin (search_key gin_trgm_ops)",
    """
    CREATE TABLE articles (
        id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source_id               bigint NOT NULL REFERENCES sources (id),
        url                     text NOT NULL,
        canonical_url           text NOT NULL UNIQUE,
        external_id             text,
        title                   text NOT NULL CHECK (title <> ''),
        summary                 text,
        body                    text,
        authors                 text[] NOT NULL DEFAULT '{}',
        language                text NOT NULL DEFAULT 'und',
        section                 text,
        tags                    text[] NOT NULL DEFAULT '{}',
        image_url               text,
        image_credit            text,
        image_caption           text,
        image_alt               text,
        image_width             integer CHECK (image_width > 0),
        image_height            integer CHECK (image_height > 0),
        published_at            timestamptz NOT NULL,
        published_at_estimated  boolean NOT NULL DEFAULT false,
        updated_at              timestamptz NOT NULL DEFAULT now(),
        ingested_at             timestamptz NOT NULL DEFAULT now(),
        content_hash            bytea NOT NULL,
        search_vector           tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector(newsgraph_ts_config(language), title), 'A')
            || setweight(to_tsvector(newsgraph_ts_config(language), coalesce(summary, '')), 'B')
            || setweight(to_tsvector(newsgraph_ts_config(language), left(coalesce(body, ''), 200000)), 'D')
        ) STORED
    )
    """,
    # Keyset pagination walks (published_at, id) in one direction; each feed has its index.
    "CREATE INDEX articles_feed_idx ON articles (published_at DESC, id DESC)",
    "CREATE INDEX articles_source_feed_idx ON articles (source_id, published_at DESC, id DESC)",
    "CREATE INDEX articles_language_feed_idx ON articles (language, published_at DESC, id DESC)",
    "CREATE INDEX articles_section_feed_idx ON articles (section, published_at DESC, id DESC)",
    "CREATE INDEX articles_url_idx ON articles (url)",
    "CREATE UNIQUE INDEX articles_external_id_idx ON articles (source_id, external_id) WHERE external_id IS NOT NULL",
    "CREATE INDEX articles_search_idx ON articles USING gin (search_vector)",
    # A long list of most common lexemes lets the planner tell a rare term from a common one;
    # with the default, a rare term looks common enough to walk the feed index for, which
    # scanned 800k rows for one match in a 1M-article bench.
    "ALTER TABLE articles ALTER COLUMN search_vector SET STATISTICS 1000",
    """
    CREATE TABLE entities (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind           text NOT NULL CHECK (kind IN ('PERSON', 'ORGANIZATION', 'PLACE', 'EVENT', 'PRODUCT', 'OTHER')),
        name           text NOT NULL CHECK (name <> ''),
        slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
        wikidata_id    text UNIQUE CHECK (wikidata_id ~ '^Q[0-9]+$'),
        description    text,
        article_count  integer NOT NULL DEFAULT 0,
        search_key     text GENERATED ALWAYS AS (newsgraph_search_key(name)) STORED,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX entities_popular_idx ON entities (article_count DESC, id DESC)",
    "CREATE INDEX entities_kind_popular_idx ON entities (kind, article_count DESC, id DESC)",
    "CREATE INDEX entities_search_trgm_idx ON entities USING gin (search_key gin_trgm_ops)",
    "CREATE INDEX entities_search_prefix_idx ON entities (search_key text_pattern_ops)",
    """
    CREATE TABLE entity_aliases (
        entity_id   bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        alias       text NOT NULL CHECK (alias <> ''),
        search_key  text GENERATED ALWAYS AS (newsgraph_search_key(alias)) STORED,
        PRIMARY KEY (entity_id, alias)
    )
    """,
    "CREATE INDEX entity_aliases_search_trgm_idx ON entity_aliases USING gin (search_key gin_trgm_ops)",
    "CREATE INDEX entity_aliases_search_prefix_idx ON entity_aliases (search_key text_pattern_ops)",
    # published_at is copied from the article so "latest articles about X" is one index scan.
    """
    CREATE TABLE article_entities (
        article_id     bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        entity_id      bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        salience       real NOT NULL DEFAULT 0 CHECK (salience >= 0 AND salience <= 1),
        mention_count  integer NOT NULL DEFAULT 1 CHECK (mention_count >= 0),
        published_at   timestamptz NOT NULL,
        PRIMARY KEY (article_id, entity_id)
    )
    """,
    "CREATE INDEX article_entities_entity_feed_idx ON article_entities (entity_id, published_at DESC, article_id DESC)",
    """
    CREATE FUNCTION newsgraph_sync_link_published_at() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE article_entities SET published_at = NEW.published_at WHERE article_id = NEW.id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER articles_sync_link_published_at
    AFTER UPDATE OF published_at ON articles
    FOR EACH ROW WHEN (OLD.published_at IS DISTINCT FROM NEW.published_at)
    EXECUTE FUNCTION newsgraph_sync_link_published_at()
    """,
    # Statement-level triggers with transition tables keep entities.article_count exact at
    # one UPDATE per statement, however many links a bulk insert or COPY adds.
    """
    CREATE FUNCTION newsgraph_count_links_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE entities e SET article_count = e.article_count + n.count
      FROM (SELECT entity_id, count(*) AS count FROM added_links GROUP BY entity_id) n
      WHERE e.id = n.entity_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION newsgraph_count_links_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE entities e SET article_count = greatest(e.article_count - n.count, 0)
      FROM (SELECT entity_id, count(*) AS count FROM removed_links GROUP BY entity_id) n
      WHERE e.id = n.entity_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION newsgraph_count_articles_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE sources s SET article_count = s.article_count + n.count
      FROM (SELECT source_id, count(*) AS count FROM added_articles GROUP BY source_id) n
      WHERE s.id = n.source_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION newsgraph_count_articles_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE sources s SET article_count = greatest(s.article_count - n.count, 0)
      FROM (SELECT source_id, count(*) AS count FROM removed_articles GROUP BY source_id) n
      WHERE s.id = n.source_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER articles_count_added AFTER INSERT ON articles
    REFERENCING NEW TABLE AS added_articles
    FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_count_articles_added()
    """,
    """
    CREATE TRIGGER articles_count_removed AFTER DELETE ON articles
    REFERENCING OLD TABLE AS removed_articles
    FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_count_articles_removed()
    """,
    """
    CREATE TRIGGER article_entities_count_added AFTER INSERT ON article_entities
    REFERENCING NEW TABLE AS added_links
    FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_count_links_added()
    """,
    """
    CREATE TRIGGER article_entities_count_removed AFTER DELETE ON article_entities
    REFERENCING OLD TABLE AS removed_links
    FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_count_links_removed()
    """,
]

DOWNGRADE = [
    "DROP TABLE article_entities",
    "DROP FUNCTION newsgraph_count_links_added()",
    "DROP FUNCTION newsgraph_count_links_removed()",
    "DROP TABLE entity_aliases",
    "DROP TABLE entities",
    "DROP TABLE articles",
    "DROP FUNCTION newsgraph_count_articles_added()",
    "DROP FUNCTION newsgraph_count_articles_removed()",
    "DROP FUNCTION newsgraph_sync_link_published_at()",
    "DROP TABLE sources",
    "DROP FUNCTION newsgraph_search_key(text)",
    "DROP FUNCTION newsgraph_ts_config(text)",
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in DOWNGRADE:
        op.execute(statement)
