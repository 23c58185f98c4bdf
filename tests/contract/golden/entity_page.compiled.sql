WITH ent AS (
    -- A merged entity's old slug resolves to the entity it was merged into.
    SELECT e.* FROM entities e
    WHERE e.slug = $2
       OR e.id = (SELECT r.entity_id FROM entity_redirects r WHERE r.old_slug = $2)
    ORDER BY e.slug = $2 DESC
    LIMIT 1
)
SELECT ent.id, ent.name, ent.slug, ent.kind, ent.wikidata_id, ent.description,
       ent.article_count,
       ARRAY(SELECT al.alias FROM entity_aliases al WHERE al.entity_id = ent.id
             ORDER BY al.alias) AS aliases,
       ARRAY(SELECT ROW(co.count, oe.id, oe.name, oe.slug, oe.kind)
             FROM (SELECT o.entity_id AS other_id, count(*)::int AS count
                   FROM (SELECT l.article_id FROM article_entities l WHERE l.entity_id = ent.id
                         ORDER BY l.published_at DESC, l.article_id DESC
                         LIMIT 1000) recent
                   JOIN article_entities o
                     ON o.article_id = recent.article_id AND o.entity_id <> ent.id
                   GROUP BY o.entity_id
                   ORDER BY count(*) DESC, o.entity_id
                   LIMIT 10) co
             JOIN entities oe ON oe.id = co.other_id
             ORDER BY co.count DESC, co.other_id) AS co_mentioned,
       ARRAY(SELECT ROW(a.id, a.title, a.published_at, s.id, s.name, s.domain,
                        ARRAY(
        SELECT ROW(x.entity_id, x.salience, e.name, e.slug, e.kind)
        FROM (SELECT l.entity_id, round(l.salience::float8 * 10000) / 10000 AS salience
              FROM article_entities l WHERE l.article_id = a.id
              ORDER BY 2 DESC, l.entity_id LIMIT 5) x
        JOIN entities e ON e.id = x.entity_id
        ORDER BY x.salience DESC, x.entity_id))
             FROM (SELECT l.article_id, l.published_at FROM article_entities l
                   WHERE l.entity_id = ent.id 
                   ORDER BY l.published_at DESC, l.article_id DESC LIMIT $1 + 1) l
             JOIN articles a ON a.id = l.article_id
             JOIN sources s ON s.id = a.source_id
             ORDER BY l.published_at DESC, l.article_id DESC) AS articles
FROM ent
