WITH rel AS (
    SELECT coalesce($2::text::json, (
        SELECT l.items FROM related_lists l
        WHERE l.article_id = $1
          AND NOT EXISTS (SELECT 1 FROM related_refresh q WHERE q.article_id = $1))) AS items
)
SELECT a.id, a.title, a.summary, a.body, a.url, a.canonical_url, a.published_at,
       a.published_at_estimated, a.updated_at, a.language, a.section, a.tags, a.authors,
       a.image_url, a.image_credit, a.image_caption, a.image_alt, a.image_width,
       a.image_height, s.id AS source_id, s.name AS source_name, s.domain AS source_domain,
       s.country AS source_country,
       ARRAY(SELECT ROW(x.salience, x.mention_count, e.id, e.name, e.slug, e.kind)
             FROM (SELECT l.entity_id, round(l.salience::float8 * 10000) / 10000 AS salience, l.mention_count
                   FROM article_entities l WHERE l.article_id = a.id) x
             JOIN entities e ON e.id = x.entity_id
             ORDER BY x.salience DESC, x.entity_id) AS entities,
       ARRAY(SELECT ROW(r.item::text, c.id, c.title, c.published_at, cs.name, ARRAY(
                        SELECT se.name
                        FROM json_array_elements_text(r.item -> 5) WITH ORDINALITY k(id, i)
                        -- A merged entity's old id resolves to the entity it was merged into.
                        JOIN entities se ON se.id = coalesce(
                            (SELECT rd.entity_id FROM entity_redirects rd
                             WHERE rd.old_id = k.id::bigint), k.id::bigint)
                        ORDER BY k.i))
             FROM json_array_elements(rel.items) WITH ORDINALITY r(item, i)
             JOIN articles c ON c.id = (r.item ->> 0)::bigint
             JOIN sources cs ON cs.id = c.source_id
             WHERE r.i <= 5
             ORDER BY r.i) AS related
FROM rel LEFT JOIN articles a ON a.id = $1 LEFT JOIN sources s ON s.id = a.source_id
WHERE rel.items IS NOT NULL
