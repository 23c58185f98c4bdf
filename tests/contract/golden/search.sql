EXPLAIN (FORMAT JSON) SELECT 1 FROM articles a WHERE ((a.language = ANY($2::text[]) AND a.search_vector @@ websearch_to_tsquery('english', $1)) OR (a.language = ANY($3::text[]) AND a.search_vector @@ websearch_to_tsquery('norwegian', $1)))
;
SELECT * FROM (SELECT 
    a.id, a.source_id, a.url, a.canonical_url, a.external_id, a.title, a.summary, a.authors,
    a.language, a.section, a.tags, a.image_url, a.image_credit, a.image_caption, a.image_alt,
    a.image_width, a.image_height, a.published_at, a.published_at_estimated, a.updated_at,
    a.ingested_at, ts_rank_cd(a.search_vector, websearch_to_tsquery(newsgraph_ts_config(a.language), $4), 32)::float8 AS rank FROM (SELECT a.* FROM articles a WHERE ((a.language = ANY($2::text[]) AND a.search_vector @@ websearch_to_tsquery('english', $1)) OR (a.language = ANY($3::text[]) AND a.search_vector @@ websearch_to_tsquery('norwegian', $1))) ORDER BY a.published_at DESC, a.id DESC LIMIT $5) a) ranked  ORDER BY rank DESC, id DESC LIMIT $6
;
SELECT 0 AS parent_id, count(*) AS n FROM (SELECT 1 FROM articles a WHERE ((a.language = ANY($2::text[]) AND a.search_vector @@ websearch_to_tsquery('english', $1)) OR (a.language = ANY($3::text[]) AND a.search_vector @@ websearch_to_tsquery('norwegian', $1))) LIMIT $4) c
;
SELECT e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count, m.bucket
FROM (SELECT id, max(bucket) AS bucket FROM ((SELECT e.id, 2 AS bucket FROM entities e WHERE (e.search_key ~>=~ newsgraph_search_key($1) AND e.search_key ~<~ (newsgraph_search_key($1) || chr(1114111))) ORDER BY e.article_count DESC, e.id DESC LIMIT $3) UNION ALL (SELECT e.id, 2 AS bucket FROM (SELECT x.entity_id FROM entity_aliases x WHERE (x.search_key ~>=~ newsgraph_search_key($1) AND x.search_key ~<~ (newsgraph_search_key($1) || chr(1114111))) OFFSET 0) x JOIN entities e ON e.id = x.entity_id WHERE true ORDER BY e.article_count DESC, e.id DESC LIMIT $3) UNION ALL (SELECT e.id, 1 AS bucket FROM entities e WHERE e.search_key LIKE '% ' || newsgraph_search_key($2) || '%' AND NOT (e.search_key ~>=~ newsgraph_search_key($1) AND e.search_key ~<~ (newsgraph_search_key($1) || chr(1114111))) ORDER BY e.article_count DESC, e.id DESC LIMIT $3) UNION ALL (SELECT e.id, 1 AS bucket FROM (SELECT x.entity_id FROM entity_aliases x WHERE x.search_key LIKE '% ' || newsgraph_search_key($2) || '%' AND NOT (x.search_key ~>=~ newsgraph_search_key($1) AND x.search_key ~<~ (newsgraph_search_key($1) || chr(1114111))) OFFSET 0) x JOIN entities e ON e.id = x.entity_id WHERE true ORDER BY e.article_count DESC, e.id DESC LIMIT $3)) hits GROUP BY id) m
JOIN entities e ON e.id = m.id
ORDER BY m.bucket DESC, e.article_count DESC, e.id DESC
LIMIT $3
;
SELECT s.id, s.domain, s.name, s.country, s.language, s.article_count, s.is_wire_service FROM sources s WHERE s.id = ANY($1::bigint[])
;
WITH RECURSIVE present(language) AS (
    (SELECT language FROM articles ORDER BY language LIMIT 1)
    UNION ALL
    SELECT (SELECT a.language FROM articles a WHERE a.language > p.language
            ORDER BY a.language LIMIT 1)
    FROM present p WHERE p.language IS NOT NULL
)
SELECT language FROM present WHERE language IS NOT NULL
