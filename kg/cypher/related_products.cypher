// name: related_products
// version: 1
// parameters: $product (string: a product id), $k (integer: most rows, default 10)
// description: The top related products of a product, strongest first, from the RELATED edges
//   that kgrec writes (kg.query.writeback.write_related: graph-aware score of fused vectors,
//   co-interaction, shared brand and category-tree proximity).
MATCH (p:Product {id: $product})-[r:RELATED]->(other:Product)
OPTIONAL MATCH (other)-[:IN_CATEGORY]->(c:Category)
OPTIONAL MATCH (other)-[:MADE_BY]->(b:Brand)
RETURN other.id AS product_id, other.title AS title, r.score AS score, r.rank AS rank,
       c.id AS category_id, b.id AS brand_id
ORDER BY rank
LIMIT $k
