SELECT 
    a.id, a.source_id, a.url, a.canonical_url, a.external_id, a.title, a.summary, a.authors,
    a.language, a.section, a.tags, a.image_url, a.image_credit, a.image_caption, a.image_alt,
    a.image_width, a.image_height, a.published_at, a.published_at_estimated, a.updated_at,
    a.ingested_at
FROM articles a
WHERE a.id = ANY($1::bigint[])
;
SELECT a.id, a.body FROM articles a WHERE a.id = ANY($1::bigint[])
;
SELECT article_id, entity_id, round(salience::float8 * 10000) / 10000 AS salience, mention_count
FROM article_entities
WHERE article_id = ANY($1::bigint[])
ORDER BY article_id, salience DESC, entity_id
;
SELECT k.id AS key, e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count
FROM unnest($1::bigint[]) AS k(id)
JOIN entities e
  ON e.id = coalesce((SELECT r.entity_id FROM entity_redirects r WHERE r.old_id = k.id), k.id)
;
SELECT l.article_id AS parent_id, CASE WHEN coalesce(x.ord, 1) = 1 THEN l.items::text END AS items,
    a.id, a.source_id, a.url, a.canonical_url, a.external_id, a.title, a.summary, a.authors,
    a.language, a.section, a.tags, a.image_url, a.image_credit, a.image_caption, a.image_alt,
    a.image_width, a.image_height, a.published_at, a.published_at_estimated, a.updated_at,
    a.ingested_at,
    s.id AS s_id, s.domain AS s_domain, s.name AS s_name, s.country AS s_country, s.language AS s_language, s.article_count AS s_article_count, s.is_wire_service AS s_is_wire_service
FROM related_lists l
LEFT JOIN LATERAL unnest(l.item_ids[1:$2]) WITH ORDINALITY AS x(id, ord) ON true
LEFT JOIN articles a ON a.id = x.id
LEFT JOIN sources s ON s.id = a.source_id
WHERE l.article_id = ANY($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM related_refresh q WHERE q.article_id = l.article_id)
;
SELECT s.id, s.domain, s.name, s.country, s.language, s.article_count, s.is_wire_service FROM sources s WHERE s.id = ANY($1::bigint[])
