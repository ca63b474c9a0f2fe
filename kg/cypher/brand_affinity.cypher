// name: brand_affinity
// version: 1
// parameters: $user (string: a user id), $k (integer: most rows, default 10)
// description: The brands a user interacts with: interactions, share of the user's
//   interactions with a brand, the position of the latest one in the history (order) and the
//   brand's catalogue size; most interacted first.
MATCH (u:User {id: $user})-[i:INTERACTED]->(:Product)-[:MADE_BY]->(b:Brand)
WITH b, count(i) AS interactions, max(i.order) AS last_order
WITH collect({brand: b, interactions: interactions, last_order: last_order}) AS rows,
     sum(interactions) AS total
UNWIND rows AS row
WITH row.brand AS b, row.interactions AS interactions, row.last_order AS last_order, total
OPTIONAL MATCH (other:Product)-[:MADE_BY]->(b)
RETURN b.id AS brand_id, b.name AS name, interactions,
       toFloat(interactions) / total AS share, last_order,
       count(other) AS catalogue_products
ORDER BY interactions DESC, last_order DESC, brand_id
LIMIT $k
