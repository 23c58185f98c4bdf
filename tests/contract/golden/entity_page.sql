SELECT article_id, entity_id, round(salience::float8 * 10000) / 10000 AS salience, mention_count
FROM article_entities
WHERE article_id = ANY($1::bigint[])
ORDER BY article_id, salience DESC, entity_id
;
SELECT e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count FROM entities e
WHERE e.slug = $1
   OR e.id = (SELECT r.entity_id FROM entity_redirects r WHERE r.old_slug = $1)
ORDER BY e.slug = $1 DESC
LIMIT 1
;
SELECT entity_id, alias FROM entity_aliases WHERE entity_id = ANY($1::bigint[])
ORDER BY entity_id, alias
;
SELECT k.id AS key, e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count
FROM unnest($1::bigint[]) AS k(id)
JOIN entities e
  ON e.id = coalesce((SELECT r.entity_id FROM entity_redirects r WHERE r.old_id = k.id), k.id)
;
SELECT parent.id AS entity_id, co.other_id, co.count
FROM unnest($1::bigint[]) AS parent(id)
CROSS JOIN LATERAL (
    SELECT o.entity_id AS other_id, count(*)::int AS count
    FROM (
        SELECT l.article_id FROM article_entities l
        WHERE l.entity_id = parent.id
        ORDER BY l.published_at DESC, l.article_id DESC
        LIMIT $3
    ) recent
    JOIN article_entities o ON o.article_id = recent.article_id AND o.entity_id <> parent.id
    GROUP BY o.entity_id
    ORDER BY count(*) DESC, o.entity_id
    LIMIT $2
) co
;
SELECT parent.id AS parent_id, page.* FROM unnest($1::bigint[]) AS parent(id) CROSS JOIN LATERAL (SELECT 
    a.id, a.source_id, a.url, a.canonical_url, a.external_id, a.title, a.summary, a.authors,
    a.language, a.section, a.tags, a.image_url, a.image_credit, a.image_caption, a.image_alt,
    a.image_width, a.image_height, a.published_at, a.published_at_estimated, a.updated_at,
    a.ingested_at FROM article_entities l JOIN articles a ON a.id = l.article_id WHERE l.entity_id = parent.id ORDER BY l.published_at DESC, l.article_id DESC LIMIT $2) page
;
SELECT s.id, s.domain, s.name, s.country, s.language, s.article_count, s.is_wire_service FROM sources s WHERE s.id = ANY($1::bigint[])
