SELECT e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count, m.bucket
FROM (
    SELECT entity_id, max(bucket) AS bucket FROM (
        SELECT n.id AS entity_id, 
CASE WHEN n.search_key LIKE newsgraph_search_key($1) || '%' THEN 2 ELSE 1 END
 AS bucket
        FROM entities n WHERE n.search_key LIKE newsgraph_search_key($1) || '%'
        UNION ALL
        SELECT x.entity_id, 
CASE WHEN x.search_key LIKE newsgraph_search_key($1) || '%' THEN 2 ELSE 1 END
 AS bucket
        FROM entity_aliases x WHERE x.search_key LIKE newsgraph_search_key($1) || '%'
    ) hits GROUP BY entity_id
) m
JOIN entities e ON e.id = m.entity_id
WHERE true
ORDER BY m.bucket DESC, e.article_count DESC, e.id DESC
LIMIT $2
