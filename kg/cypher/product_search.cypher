// name: product_search
// version: 1
// parameters: $query (string: search words in Lucene query syntax, e.g. 'machine screws'),
//   $k (integer: most rows, default 10)
// description: Hybrid product search in the graph: the k best BM25 hits of the full-text index
//   product_text (title, description, brand and category names; ingest.search_index), each
//   scored by its BM25 divided by the best hit's, then the k nearest products of every hit in
//   the vector index product_fused (kg.query.writeback.write_fused_vectors), scored by the hit's
//   share times their similarity; each product keeps its best score and the hit it came
//   through (a hit is its own nearest, similarity 1). kgrec search ranks in process with the
//   query's own text vector and the user's history (kg.query.search).
CALL db.index.fulltext.queryNodes('product_text', $query, {limit: $k}) YIELD node, score
WITH collect({hit: node, bm25: score}) AS hits, max(score) AS best
UNWIND hits AS h
WITH h.hit AS hit, h.bm25 AS bm25, h.bm25 / best AS lexical
CALL db.index.vector.queryNodes('product_fused', $k, hit.fused) YIELD node, score
WITH node, hit, bm25, lexical * score AS combined
ORDER BY combined DESC, hit.id
WITH node, collect({via: hit.id, bm25: CASE WHEN node = hit THEN bm25 END, score: combined})[0]
     AS found
RETURN node.id AS product_id, node.title AS title, found.score AS score, found.via AS via,
       found.bm25 AS bm25
ORDER BY score DESC, product_id
LIMIT $k
