WITH rel AS (
    SELECT coalesce($2::text::json, (
        SELECT l.items FROM related_lists l
        WHERE l.article_id = $1
          AND NOT EXISTS (SELECT 1 FROM related_refresh q WHERE q.article_id = $1))) AS items
)
SELECT CASE WHEN rel.items IS NOT NULL THEN json_build_object('article', (SELECT json_build_object(
    'id', rtrim(encode(convert_to('Article:' || a.id::text, 'UTF8'), 'base64'), '='), 'title', a.title, 'summary', a.summary, 'body', a.body,
    'url', a.url, 'canonicalUrl', a.canonical_url, 'publishedAt', CASE WHEN a.published_at = date_trunc('second', a.published_at) THEN to_json(a.published_at) ELSE to_json(to_char(a.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END,
    'publishedAtEstimated', a.published_at_estimated, 'updatedAt', CASE WHEN a.updated_at = date_trunc('second', a.updated_at) THEN to_json(a.updated_at) ELSE to_json(to_char(a.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END,
    'language', a.language, 'section', a.section, 'tags', to_json(a.tags),
    'authors', coalesce((SELECT json_agg(json_build_object('name', u.name) ORDER BY u.i)
                         FROM unnest(a.authors) WITH ORDINALITY u(name, i)), '[]'::json),
    'image', CASE WHEN coalesce(a.image_url, '') <> '' THEN json_build_object(
        'url', a.image_url, 'credit', a.image_credit, 'caption', a.image_caption,
        'alt', a.image_alt, 'width', a.image_width, 'height', a.image_height) END,
    'source', (SELECT json_build_object('id', rtrim(encode(convert_to('Source:' || s.id::text, 'UTF8'), 'base64'), '='), 'name', s.name,
                                        'domain', s.domain, 'country', s.country)
               FROM sources s WHERE s.id = a.source_id),
    'entities', coalesce((
        SELECT json_agg(json_build_object(
            'salience', x.salience, 'mentionCount', x.mention_count,
            'entity', json_build_object(
                'id', rtrim(encode(convert_to('Entity:' || e.id::text, 'UTF8'), 'base64'), '='), 'name', e.name, 'slug', e.slug, 'kind', e.kind,
                'articles', json_build_object('edges', coalesce((
                    SELECT json_agg(json_build_object('node', json_build_object(
                        'id', rtrim(encode(convert_to('Article:' || b.id::text, 'UTF8'), 'base64'), '='), 'title', b.title,
                        'publishedAt', CASE WHEN b.published_at = date_trunc('second', b.published_at) THEN to_json(b.published_at) ELSE to_json(to_char(b.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END,
                        'source', json_build_object('name', bs.name)))
                        ORDER BY r.published_at DESC, r.article_id DESC)
                    FROM (SELECT l.article_id, l.published_at FROM article_entities l
                          WHERE l.entity_id = e.id
                          ORDER BY l.published_at DESC, l.article_id DESC LIMIT 5) r
                    JOIN articles b ON b.id = r.article_id
                    JOIN sources bs ON bs.id = b.source_id), '[]'::json))))
            ORDER BY x.salience DESC, x.entity_id)
        FROM (SELECT l.entity_id, round(l.salience::float8 * 10000) / 10000 AS salience,
                     l.mention_count
              FROM article_entities l WHERE l.article_id = a.id) x
        JOIN entities e ON e.id = x.entity_id), '[]'::json),
    'relatedStories', coalesce((
        SELECT json_agg(json_build_object(
            'score', r.item -> 1,
            'article', json_build_object(
                'id', rtrim(encode(convert_to('Article:' || c.id::text, 'UTF8'), 'base64'), '='), 'title', c.title,
                'publishedAt', CASE WHEN c.published_at = date_trunc('second', c.published_at) THEN to_json(c.published_at) ELSE to_json(to_char(c.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END,
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
        FROM json_array_elements(rel.items) WITH ORDINALITY r(item, i)
        JOIN articles c ON c.id = (r.item ->> 0)::bigint
        JOIN sources cs ON cs.id = c.source_id
        WHERE r.i <= 5), '[]'::json)
) FROM articles a WHERE a.id = $1))::text END FROM rel
