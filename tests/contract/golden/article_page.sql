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
SELECT article_id, entity_id, round(salience::numeric, 4)::float8 AS salience, mention_count
FROM article_entities
WHERE article_id = ANY($1::bigint[])
ORDER BY article_id, salience DESC, entity_id
;
SELECT article_id, source_id, published_at, dated, story_id, duplicate_of, terms, weights
FROM article_signals WHERE article_id = ANY($1::bigint[])
;
SELECT k.id AS key, e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count
FROM unnest($1::bigint[]) AS k(id)
JOIN entities e
  ON e.id = coalesce((SELECT r.entity_id FROM entity_redirects r WHERE r.old_id = k.id), k.id)
;
SELECT parent.id AS parent_id, page.* FROM unnest($1::bigint[]) AS parent(id) CROSS JOIN LATERAL (SELECT 
    a.id, a.source_id, a.url, a.canonical_url, a.external_id, a.title, a.summary, a.authors,
    a.language, a.section, a.tags, a.image_url, a.image_credit, a.image_caption, a.image_alt,
    a.image_width, a.image_height, a.published_at, a.published_at_estimated, a.updated_at,
    a.ingested_at FROM article_entities l JOIN articles a ON a.id = l.article_id WHERE l.entity_id = parent.id ORDER BY l.published_at DESC, l.article_id DESC LIMIT $2) page
;
SELECT s.id, s.domain, s.name, s.country, s.language, s.article_count, s.is_wire_service FROM sources s WHERE s.id = ANY($1::bigint[])
;
WITH parents AS (
    SELECT s.*, coalesce(s.duplicate_of, s.article_id) AS dup_root,
           ARRAY(SELECT ae.entity_id FROM article_entities ae WHERE ae.article_id = s.article_id
                 ORDER BY ae.salience DESC, ae.entity_id LIMIT $5) AS entity_ids
    FROM article_signals s WHERE s.article_id = ANY($1::bigint[])
),
found AS (
    SELECT p.article_id AS parent, c.article_id
    FROM parents p
    CROSS JOIN LATERAL (
        SELECT t.article_id, sum(q.weight) AS hits
        FROM unnest(p.terms[1:$2], p.weights[1:$2]) AS q(term, weight)
        CROSS JOIN LATERAL (
            (SELECT a.article_id FROM article_terms a
             WHERE a.term = q.term
               AND (a.published_at, a.article_id) > (p.published_at, p.article_id)
               AND a.published_at <= p.published_at + $3::interval
             ORDER BY a.published_at, a.article_id LIMIT $4)
            UNION ALL
            (SELECT a.article_id FROM article_terms a
             WHERE a.term = q.term
               AND (a.published_at, a.article_id) < (p.published_at, p.article_id)
               AND a.published_at >= p.published_at - $3::interval
             ORDER BY a.published_at DESC, a.article_id DESC LIMIT $4)
        ) t
        GROUP BY t.article_id ORDER BY hits DESC, t.article_id LIMIT $6
    ) c
    UNION
    SELECT p.article_id, m.article_id
    FROM parents p
    CROSS JOIN LATERAL (
        SELECT m.article_id FROM article_signals m
        WHERE m.story_id = p.story_id
          AND m.published_at >= p.published_at - $3::interval
          AND m.published_at <= p.published_at + $3::interval
        ORDER BY m.published_at DESC, m.article_id DESC LIMIT $4
    ) m
    UNION
    SELECT p.article_id, d.article_id
    FROM parents p
    CROSS JOIN LATERAL (
        SELECT d.article_id FROM article_signals d
        WHERE d.duplicate_of = p.dup_root OR d.article_id = p.dup_root LIMIT $4
    ) d
    UNION
    SELECT p.article_id, e.article_id
    FROM parents p
    CROSS JOIN LATERAL unnest(p.entity_ids) AS pe(entity_id)
    CROSS JOIN LATERAL (
        SELECT ae.article_id FROM article_entities ae
        WHERE ae.entity_id = pe.entity_id
          AND ae.published_at >= p.published_at - $3::interval
          AND ae.published_at <= p.published_at + $3::interval
        ORDER BY ae.published_at DESC, ae.article_id DESC LIMIT $7
    ) e
)
SELECT f.parent, s.article_id, s.source_id, s.language, s.published_at, s.dated, s.story_id,
       s.duplicate_of, s.terms, s.weights,
       ARRAY(SELECT ae.entity_id FROM article_entities ae
             WHERE ae.article_id = s.article_id AND ae.entity_id = ANY(p.entity_ids)
             ORDER BY ae.entity_id) AS shared_entities
FROM found f
JOIN parents p ON p.article_id = f.parent
JOIN article_signals s ON s.article_id = f.article_id
WHERE s.article_id <> f.parent AND NOT s.exclude_from_related
  AND s.published_at BETWEEN p.published_at - $3::interval AND p.published_at + $3::interval
