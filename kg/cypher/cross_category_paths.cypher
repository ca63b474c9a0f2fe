// name: cross_category_paths
// version: 1
// parameters: $user (string: a user id), $level (integer: category tree level, 1 = top), $k (integer: most rows, default 10)
// description: Products RELATED to something the user interacted with whose level-$level
//   category holds none of the user's products, each with its path
//   (User)-[:INTERACTED]->(Product)-[:RELATED]->(Product) and the new category; the strongest
//   RELATED edge per product, strongest first.
MATCH (u:User {id: $user})-[:INTERACTED]->(:Product)-[:IN_CATEGORY]->(:Category)
      -[:SUBCATEGORY_OF*0..]->(mine:Category {level: $level})
WITH u, collect(DISTINCT mine) AS mine
MATCH (u)-[:INTERACTED]->(h:Product)-[r:RELATED]->(p:Product)-[:IN_CATEGORY]->(:Category)
      -[:SUBCATEGORY_OF*0..]->(other:Category {level: $level})
WHERE NOT other IN mine AND NOT EXISTS { (u)-[:INTERACTED]->(p) }
WITH u, p, other, h, r
ORDER BY r.score DESC, h.id
WITH u, p, other, collect({via: h.id, score: r.score})[0] AS best
RETURN p.id AS product_id, p.title AS title, other.id AS new_category, best.via AS via_product,
       best.score AS score,
       '(User ' + u.id + ')-[:INTERACTED]->(Product ' + best.via + ')-[:RELATED]->(Product '
         + p.id + ')' AS path
ORDER BY score DESC, product_id
LIMIT $k
