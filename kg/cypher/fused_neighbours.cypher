// name: fused_neighbours
// version: 1
// parameters: $product (string: a product id), $k (integer: most rows, default 10)
// description: Nearest products by cosine of the fused GNN vectors, through the vector index
//   product_fused (kg.query.writeback.write_fused_vectors).
MATCH (p:Product {id: $product})
CALL db.index.vector.queryNodes('product_fused', $k + 1, p.fused) YIELD node, score
WITH p, node, score
WHERE node <> p
RETURN node.id AS product_id, node.title AS title, score
ORDER BY score DESC, product_id
LIMIT $k
