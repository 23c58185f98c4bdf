SELECT e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count, m.bucket
FROM (SELECT id, max(bucket) AS bucket FROM ((SELECT e.id, 2 AS bucket FROM entities e WHERE (e.search_key ~>=~ newsgraph_search_key($1) AND e.search_key ~<~ (newsgraph_search_key($1) || chr(1114111))) ORDER BY e.article_count DESC, e.id DESC LIMIT $2) UNION ALL (SELECT e.id, 2 AS bucket FROM (SELECT x.entity_id FROM entity_aliases x WHERE (x.search_key ~>=~ newsgraph_search_key($1) AND x.search_key ~<~ (newsgraph_search_key($1) || chr(1114111))) OFFSET 0) x JOIN entities e ON e.id = x.entity_id WHERE true ORDER BY e.article_count DESC, e.id DESC LIMIT $2)) hits GROUP BY id) m
JOIN entities e ON e.id = m.id
ORDER BY m.bucket DESC, e.article_count DESC, e.id DESC
LIMIT $2
