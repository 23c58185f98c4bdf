WITH page AS (
    SELECT a.id, a.title, a.summary, a.url, a.published_at, a.language, a.source_id,
           rtrim(replace(encode(convert_to('{"k":"newest","v":[' || (CASE WHEN a.published_at = date_trunc('second', a.published_at) THEN to_json(a.published_at) ELSE to_json(to_char(a.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END)::text || ',' || a.id || ']}', 'UTF8'), 'base64'), E'\n', ''), '=') AS cursor,
           row_number() OVER (ORDER BY a.published_at DESC, a.id DESC) AS n
    FROM (SELECT * FROM articles a 
          ORDER BY a.published_at DESC, a.id DESC LIMIT $1 + 1) a
)
SELECT json_build_object('articles', json_build_object(
        'totalCount', (SELECT coalesce(sum(c.article_count), 0)::bigint FROM sources c),
        'totalCountIsExact', true,
        'edges', coalesce((SELECT json_agg(json_build_object('cursor', p.cursor, 'node', json_build_object(
    'id', rtrim(encode(convert_to('Article:' || p.id::text, 'UTF8'), 'base64'), '='), 'title', p.title, 'summary', p.summary, 'url', p.url,
    'publishedAt', CASE WHEN p.published_at = date_trunc('second', p.published_at) THEN to_json(p.published_at) ELSE to_json(to_char(p.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END, 'language', p.language,
    'source', json_build_object('id', rtrim(encode(convert_to('Source:' || s.id::text, 'UTF8'), 'base64'), '='), 'name', s.name, 'domain', s.domain),
    'entities', coalesce((
        SELECT json_agg(json_build_object('salience', x.salience, 'entity', json_build_object('id', rtrim(encode(convert_to('Entity:' || e.id::text, 'UTF8'), 'base64'), '='), 'name', e.name, 'slug', e.slug, 'kind', e.kind))
                        ORDER BY x.salience DESC, x.entity_id)
        FROM (SELECT l.entity_id, round(l.salience::float8 * 10000) / 10000 AS salience
              FROM article_entities l WHERE l.article_id = p.id
              ORDER BY 2 DESC, l.entity_id LIMIT 5) x
        JOIN entities e ON e.id = x.entity_id), '[]'::json)))
                                     ORDER BY p.n)
                           FROM page p JOIN sources s ON s.id = p.source_id
                           WHERE p.n <= $1), '[]'::json),
        'pageInfo', json_build_object(
            'hasNextPage', (SELECT count(*) FROM page) > $1,
            'endCursor', (SELECT p.cursor FROM page p WHERE p.n <= $1
                          ORDER BY p.n DESC LIMIT 1))))::text
