SELECT article_id, source_id, published_at, dated, story_id, duplicate_of, terms, weights
FROM article_signals WHERE article_id = ANY($1::bigint[])
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
;
SELECT json_build_object('article', (SELECT json_build_object(
    'id', rtrim(translate(encode(convert_to('Article:' || a.id, 'UTF8'), 'base64'), E'+/\n', '-_'), '='), 'title', a.title, 'summary', a.summary, 'body', a.body,
    'url', a.url, 'canonicalUrl', a.canonical_url, 'publishedAt', (to_char(a.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN extract(microseconds FROM a.published_at) % 1000000 = 0 THEN '' ELSE to_char(a.published_at AT TIME ZONE 'UTC', '.US') END || '+00:00'),
    'publishedAtEstimated', a.published_at_estimated, 'updatedAt', (to_char(a.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN extract(microseconds FROM a.updated_at) % 1000000 = 0 THEN '' ELSE to_char(a.updated_at AT TIME ZONE 'UTC', '.US') END || '+00:00'),
    'language', a.language, 'section', a.section, 'tags', to_json(a.tags),
    'authors', coalesce((SELECT json_agg(json_build_object('name', u.name) ORDER BY u.i)
                         FROM unnest(a.authors) WITH ORDINALITY u(name, i)), '[]'::json),
    'image', CASE WHEN coalesce(a.image_url, '') <> '' THEN json_build_object(
        'url', a.image_url, 'credit', a.image_credit, 'caption', a.image_caption,
        'alt', a.image_alt, 'width', a.image_width, 'height', a.image_height) END,
    'source', (SELECT json_build_object('id', rtrim(translate(encode(convert_to('Source:' || s.id, 'UTF8'), 'base64'), E'+/\n', '-_'), '='), 'name', s.name,
                                        'domain', s.domain, 'country', s.country)
               FROM sources s WHERE s.id = a.source_id),
    'entities', coalesce((
        SELECT json_agg(json_build_object(
            'salience', x.salience, 'mentionCount', x.mention_count,
            'entity', json_build_object(
                'id', rtrim(translate(encode(convert_to('Entity:' || e.id, 'UTF8'), 'base64'), E'+/\n', '-_'), '='), 'name', e.name, 'slug', e.slug, 'kind', e.kind,
                'articles', json_build_object('edges', coalesce((
                    SELECT json_agg(json_build_object('node', json_build_object(
                        'id', rtrim(translate(encode(convert_to('Article:' || b.id, 'UTF8'), 'base64'), E'+/\n', '-_'), '='), 'title', b.title,
                        'publishedAt', (to_char(b.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN extract(microseconds FROM b.published_at) % 1000000 = 0 THEN '' ELSE to_char(b.published_at AT TIME ZONE 'UTC', '.US') END || '+00:00'),
                        'source', json_build_object('name', bs.name)))
                        ORDER BY r.published_at DESC, r.article_id DESC)
                    FROM (SELECT l.article_id, l.published_at FROM article_entities l
                          WHERE l.entity_id = e.id
                          ORDER BY l.published_at DESC, l.article_id DESC LIMIT 5) r
                    JOIN articles b ON b.id = r.article_id
                    JOIN sources bs ON bs.id = b.source_id), '[]'::json))))
            ORDER BY x.salience DESC, x.entity_id)
        FROM (SELECT l.entity_id, round(l.salience::numeric, 4)::float8 AS salience,
                     l.mention_count
              FROM article_entities l WHERE l.article_id = a.id) x
        JOIN entities e ON e.id = x.entity_id), '[]'::json),
    'relatedStories', coalesce((
        SELECT json_agg(json_build_object(
            'score', r.item -> 1,
            'article', json_build_object(
                'id', rtrim(translate(encode(convert_to('Article:' || c.id, 'UTF8'), 'base64'), E'+/\n', '-_'), '='), 'title', c.title,
                'publishedAt', (to_char(c.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN extract(microseconds FROM c.published_at) % 1000000 = 0 THEN '' ELSE to_char(c.published_at AT TIME ZONE 'UTC', '.US') END || '+00:00'),
                'source', json_build_object('name', cs.name)),
            'reasons', json_build_object(
                'relation', r.item ->> 4, 'textSimilarity', r.item -> 2,
                'timeGapHours', r.item -> 3,
                'sharedEntities', coalesce((
                    SELECT json_agg(json_build_object('name', se.name) ORDER BY k.i)
                    FROM json_array_elements_text(r.item -> 5) WITH ORDINALITY k(id, i)
                    -- A merged entity's old id resolves to the entity it was merged into.
                    JOIN entities se ON se.id = coalesce(
                        (SELECT rd.entity_id FROM entity_redirects rd
                         WHERE rd.old_id = k.id::bigint), k.id::bigint)), '[]'::json)))
            ORDER BY r.i)
        FROM json_array_elements($2::text::json) WITH ORDINALITY r(item, i)
        JOIN articles c ON c.id = (r.item ->> 0)::bigint
        JOIN sources cs ON cs.id = c.source_id), '[]'::json)
) FROM articles a WHERE a.id = $1))::text
