-- Computed columns PostGraphile needs to ask our questions of our own tables (bench database
-- only; the service never reads these). Same SQL shapes as service/db/: an entity's latest
-- articles walk article_entities (entity_id, published_at, article_id); co-mentions are
-- counted over the entity's latest 1,000 articles.
CREATE OR REPLACE FUNCTION entities_latest_articles(e entities, exclude_article_id bigint DEFAULT 0, n integer DEFAULT 20)
RETURNS SETOF articles LANGUAGE sql STABLE AS $$
  SELECT a.* FROM article_entities l JOIN articles a ON a.id = l.article_id
  WHERE l.entity_id = e.id AND l.article_id <> exclude_article_id
  ORDER BY l.published_at DESC, l.article_id DESC
  LIMIT n
$$;
COMMENT ON FUNCTION entities_latest_articles(entities, bigint, integer) IS E'@name latestArticles';

CREATE OR REPLACE FUNCTION entities_co_mentioned(e entities, n integer DEFAULT 10)
RETURNS TABLE (count integer, entity_id bigint, name text, slug text, kind text)
LANGUAGE sql STABLE AS $$
  SELECT co.count, oe.id, oe.name, oe.slug, oe.kind
  FROM (SELECT o.entity_id AS other_id, count(*)::int AS count
        FROM (SELECT l.article_id FROM article_entities l WHERE l.entity_id = e.id
              ORDER BY l.published_at DESC, l.article_id DESC LIMIT 1000) recent
        JOIN article_entities o ON o.article_id = recent.article_id AND o.entity_id <> e.id
        GROUP BY o.entity_id ORDER BY count(*) DESC, o.entity_id LIMIT n) co
  JOIN entities oe ON oe.id = co.other_id
  ORDER BY co.count DESC, co.other_id
$$;
COMMENT ON FUNCTION entities_co_mentioned(entities, integer) IS E'@name coMentioned';
