WITH ent AS (
    -- A merged entity's old slug resolves to the entity it was merged into.
    SELECT e.* FROM entities e
    WHERE e.slug = $2
       OR e.id = (SELECT r.entity_id FROM entity_redirects r WHERE r.old_slug = $2)
    ORDER BY e.slug = $2 DESC
    LIMIT 1
), page AS (
    SELECT a.id, a.title, a.published_at, a.source_id,
           rtrim(replace(encode(convert_to('{"k":"newest","v":[' || (CASE WHEN a.published_at = date_trunc('second', a.published_at) THEN to_json(a.published_at) ELSE to_json(to_char(a.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END)::text || ',' || a.id || ']}', 'UTF8'), 'base64'), E'\n', ''), '=') AS cursor,
           row_number() OVER (ORDER BY l.published_at DESC, l.article_id DESC) AS n
    FROM (SELECT l.article_id, l.published_at FROM ent
          JOIN article_entities l ON l.entity_id = ent.id 
          ORDER BY l.published_at DESC, l.article_id DESC LIMIT $1 + 1) l
    JOIN articles a ON a.id = l.article_id
)
SELECT json_build_object('entity', (SELECT json_build_object(
    'id', rtrim(encode(convert_to('Entity:' || ent.id::text, 'UTF8'), 'base64'), '='), 'name', ent.name, 'slug', ent.slug, 'kind', ent.kind,
    'aliases', coalesce((SELECT json_agg(al.alias ORDER BY al.alias) FROM entity_aliases al
                         WHERE al.entity_id = ent.id), '[]'::json),
    'wikidataId', ent.wikidata_id, 'description', ent.description,
    'articleCount', ent.article_count,
    'coMentioned', coalesce((
        SELECT json_agg(json_build_object('count', co.count, 'entity', json_build_object('id', rtrim(encode(convert_to('Entity:' || oe.id::text, 'UTF8'), 'base64'), '='), 'name', oe.name, 'slug', oe.slug, 'kind', oe.kind))
                        ORDER BY co.count DESC, co.other_id)
        FROM (SELECT o.entity_id AS other_id, count(*)::int AS count
              FROM (SELECT l.article_id FROM article_entities l WHERE l.entity_id = ent.id
                    ORDER BY l.published_at DESC, l.article_id DESC
                    LIMIT 1000) recent
              JOIN article_entities o
                ON o.article_id = recent.article_id AND o.entity_id <> ent.id
              GROUP BY o.entity_id
              ORDER BY count(*) DESC, o.entity_id
              LIMIT 10) co
        JOIN entities oe ON oe.id = co.other_id), '[]'::json),
    'articles', json_build_object(
        'totalCount', ent.article_count,
        'edges', coalesce((SELECT json_agg(json_build_object('cursor', p.cursor, 'node', json_build_object(
    'id', rtrim(encode(convert_to('Article:' || p.id::text, 'UTF8'), 'base64'), '='), 'title', p.title, 'publishedAt', CASE WHEN p.published_at = date_trunc('second', p.published_at) THEN to_json(p.published_at) ELSE to_json(to_char(p.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00') END,
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
                          ORDER BY p.n DESC LIMIT 1)))
) FROM ent))::text
