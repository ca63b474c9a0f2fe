// name: who_bought_also
// version: 1
// parameters: $product (string: a product id), $k (integer: most rows, default 10)
// description: Users who interacted with this product also interacted with: other products
//   by the number of such users (straight from INTERACTED, no model involved).
MATCH (p:Product {id: $product})<-[:INTERACTED]-(u:User)-[:INTERACTED]->(other:Product)
WHERE other <> p
RETURN other.id AS product_id, other.title AS title, count(DISTINCT u) AS users
ORDER BY users DESC, product_id
LIMIT $k
