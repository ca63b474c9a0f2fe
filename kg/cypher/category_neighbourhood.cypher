// name: category_neighbourhood
// version: 1
// parameters: $category (string: a category id), $k (integer: most rows per relation, default 5)
// description: The neighbourhood of a category: its parent, children and siblings in the
//   tree, and the categories outside it that its products' RELATED edges lead to (with the
//   number of such edges); each with the number of products in or under it.
MATCH (c:Category {id: $category})
CALL (c) {
  MATCH (c)-[:SUBCATEGORY_OF]->(n:Category)
  RETURN 'parent' AS relation, n, null AS related_edges
  UNION
  MATCH (n:Category)-[:SUBCATEGORY_OF]->(c)
  RETURN 'child' AS relation, n, null AS related_edges
  UNION
  MATCH (c)-[:SUBCATEGORY_OF]->(:Category)<-[:SUBCATEGORY_OF]-(n:Category)
  WHERE n <> c
  RETURN 'sibling' AS relation, n, null AS related_edges
  UNION
  MATCH (a:Product)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..]->(c)
  MATCH (a)-[:RELATED]->(:Product)-[:IN_CATEGORY]->(n:Category)
  WHERE NOT EXISTS { (n)-[:SUBCATEGORY_OF*0..]->(c) }
  RETURN 'related' AS relation, n, count(*) AS related_edges
}
OPTIONAL MATCH (p:Product)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..]->(n)
WITH relation, n, related_edges, count(DISTINCT p) AS products
ORDER BY relation, related_edges DESC, products DESC, n.id
WITH relation, collect({n: n, related_edges: related_edges, products: products})[0..$k] AS rows
UNWIND rows AS row
RETURN relation, row.n.id AS category_id, row.n.name AS name, row.n.level AS level,
       row.related_edges AS related_edges, row.products AS products
