SELECT (SELECT coalesce(sum(c.article_count), 0)::bigint FROM sources c) AS total,
       ARRAY(
    SELECT ROW(a.id, a.title, a.summary, a.url, a.published_at, a.language,
               s.id, s.name, s.domain, ARRAY(
        SELECT ROW(x.entity_id, x.salience, e.name, e.slug, e.kind)
        FROM (SELECT l.entity_id, round(l.salience::float8 * 10000) / 10000 AS salience
              FROM article_entities l WHERE l.article_id = a.id
              ORDER BY 2 DESC, l.entity_id LIMIT 5) x
        JOIN entities e ON e.id = x.entity_id
        ORDER BY x.salience DESC, x.entity_id))
    FROM (SELECT a.id, a.title, a.summary, a.url, a.published_at, a.language, a.source_id
          FROM articles a 
          ORDER BY a.published_at DESC, a.id DESC LIMIT $1 + 1) a
    JOIN sources s ON s.id = a.source_id
    ORDER BY a.published_at DESC, a.id DESC) AS articles
