// name: product_neighbourhood
// version: 1
// parameters: $product (string: a product id), $k (integer: most users, default 10)
// description: The graph around a product, as paths to draw (kgrec browse shows them as a
//   graph): its category chain up to the root, its brand, and the $k users who interacted
//   with it most recently (by their position in the history, then user id).
MATCH (p:Product {id: $product})
CALL (p) {
  MATCH path = (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..]->(root:Category)
  WHERE NOT EXISTS { (root)-[:SUBCATEGORY_OF]->(:Category) }
  RETURN path
  UNION
  MATCH path = (p)-[:MADE_BY]->(:Brand)
  RETURN path
  UNION
  MATCH path = (p)<-[i:INTERACTED]-(u:User)
  WITH path, i, u
  ORDER BY i.order DESC, u.id
  LIMIT $k
  RETURN path
}
RETURN path
