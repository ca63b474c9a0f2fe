"""Write the two walkthrough notebooks (run: .venv/bin/python notebooks/build_notebooks.py).

The notebooks are committed without outputs; ``tests/test_notebooks.py`` executes them against
the test session's Neo4j on the tiny synthetic shop.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

CONNECT = '''import os
from pathlib import Path

from kg.neo4j.driver import open_driver
from kg.neo4j.settings import settings_from_env

# NEO4J_URI / NEO4J_USERNAME / NEO4J_PASSWORD name a server; without them, use the project's
# local Neo4j (started here if it is not running: `kgrec neo4j start` does the same).
settings = settings_from_env()
if settings is None:
    from kg.neo4j.server import LocalNeo4j
    from kg.neo4j.settings import default_home

    server = LocalNeo4j(default_home())
    settings = server.settings(server.status() or server.start())
driver = open_driver(settings)
db = settings.database
print(settings.uri)'''

ENGINEER = [
    new_markdown_cell(
        "# kgrec for engineers: ingest → embed → train → recommend\n\n"
        "The whole pipeline in Python on a seeded synthetic shop: load it into Neo4j, train "
        "TransE embeddings and write them back, train the fusion GNN (BERT text + KGE + graph), "
        "evaluate it against baselines, and query the recommender. `KGREC_PRESET` picks the "
        "shop size (`tiny` in CI, `demo` by default) and `KGREC_WORKDIR` where artifacts go."
    ),
    new_code_cell(CONNECT),
    new_code_cell(
        '''from ingest.neo4j_export import export_graph
from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop

preset = os.environ.get("KGREC_PRESET", "demo")
workdir = Path(os.environ.get("KGREC_WORKDIR", "runs/notebook"))
shop = generate_shop(SyntheticConfig.preset(preset, seed=0), show_progress=False)
write_graph(driver, shop, database=db, show_progress=False)
tables = export_graph(driver, database=db, show_progress=False)  # Neo4j is the source of truth
assert tables.fingerprint() == shop.fingerprint()
graph_counts(driver, database=db)'''
    ),
    new_markdown_cell("## KG embeddings (PyKEEN TransE), written back with a vector index"),
    new_code_cell(
        '''from kg.embeddings.pipeline import embed_graph
from kg.embeddings.train import EmbedConfig
from kg.embeddings.writeback import write_embeddings

emb = embed_graph(tables, EmbedConfig(model="transe", dim=32, epochs=30, batch_size=512, lr=0.02,
                                      eval_every=10, seed=0), workdir / "kge", show_progress=False)
write_embeddings(driver, emb, database=db, show_progress=False)
emb.config["metrics"]["test"]'''
    ),
    new_markdown_cell("## The fusion GNN: text + KGE + graph, early stopping on validation NDCG@10"),
    new_code_cell(
        '''from gnn.model import FusionConfig
from gnn.pipeline import train_fusion

result = train_fusion(tables, workdir / "fusion", FusionConfig(max_epochs=20, batch_size=1024),
                      kge=emb, text_cache=workdir / "text-cache",
                      show_progress=False)
result.metrics["test"]'''
    ),
    new_code_cell(
        '''import matplotlib.pyplot as plt

from gnn.baselines import ItemCooccurrence, MostPopular
from gnn.evaluate import evaluate

curve = result.model.fit_info["curve"]
scores = {"most popular": MostPopular(), "co-occurrence": ItemCooccurrence()}
ndcg = {name: evaluate(m.fit(result.split), result.split, ks=(10,), show_progress=False)["ndcg@10"]
        for name, m in scores.items()}
ndcg["fusion"] = result.metrics["test"]["ndcg@10"]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
a.plot([c["epoch"] for c in curve], [c["loss"] for c in curve])
a.set(xlabel="epoch", ylabel="train loss", title="training curve")
b.bar(list(ndcg), list(ndcg.values()))
b.set(ylabel="test NDCG@10 (leave-one-out)", title="fusion vs baselines")
plt.show()
ndcg'''
    ),
    new_markdown_cell("## Recommendations with explanations, and RELATED edges for analysts"),
    new_code_cell(
        '''from kg.query import Recommender
from kg.query.writeback import write_fused_vectors, write_related

rec = Recommender.load(workdir / "fusion", tables)
product = rec.index.product_ids[0]
user = rec.index.user_ids[0]
for r in rec.related(product, k=5):
    print(r.rank, r.product_id, round(r.score, 3), r.title, "|", r.reason)'''
    ),
    new_code_cell(
        '''for r in rec.recommend(user, k=5):
    print(r.rank, r.product_id, round(r.score, 3), r.title)
    for path in rec.explain(user, r.product_id, max_paths=1):
        print("    because", path)'''
    ),
    new_code_cell(
        '''for r in rec.cross_category(user, k=5, level=1):
    print(r.rank, r.product_id, round(r.score, 3), r.title, "| via", r.path)
# A new user is just a list of products; no retraining.
[r.product_id for r in rec.recommend(list(rec.index.product_ids[:3]), k=5)]'''
    ),
    new_markdown_cell(
        "## Personalised product search\n\n"
        "A text query ranked by BM25, the MiniLM text vectors, the categories and brands it "
        "names and, for a user, the same graph-aware score as `recommend`."
    ),
    new_code_cell(
        '''for r in rec.search("steel screws", user=user, k=5):
    print(r.rank, r.product_id, round(r.score, 3), r.title, "|", r.reason)'''
    ),
    new_code_cell(
        '''edges = write_related(driver, rec, k=10, database=db, show_progress=False)
write_fused_vectors(driver, rec, database=db, show_progress=False)
edges'''
    ),
]

ANALYST = [
    new_markdown_cell(
        "# kgrec for analysts: the graph in Cypher\n\n"
        "Connect to Neo4j, explore the shop graph, read the `RELATED` edges and vector indexes "
        "that kgrec writes, run recipes and a full-text search with the driver and with "
        "`kgrec cypher` (Neo4j's cypher-shell), and plot. Every query is a versioned recipe in "
        "`kg/cypher/` or a literal query with `$parameters`. Run the engineers' notebook (or `make demo`) first so "
        "the graph holds models' outputs."
    ),
    new_code_cell(CONNECT),
    new_code_cell(
        '''records, _, _ = driver.execute_query(
    "MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n ORDER BY n DESC", database_=db)
{r["label"]: r["n"] for r in records}'''
    ),
    new_code_cell(
        '''import matplotlib.pyplot as plt

records, _, _ = driver.execute_query(
    """MATCH (c:Category {level: $level})<-[:SUBCATEGORY_OF*0..]-(:Category)<-[:IN_CATEGORY]-(p:Product)
             <-[r:INTERACTED]-(:User)
       RETURN c.name AS department, count(r) AS interactions ORDER BY interactions DESC""",
    level=1, database_=db)
plt.figure(figsize=(8, 3))
plt.bar([r["department"] for r in records], [r["interactions"] for r in records])
plt.xticks(rotation=45, ha="right"); plt.ylabel("interactions"); plt.title("departments")
plt.tight_layout(); plt.show()'''
    ),
    new_markdown_cell("## Related products, who bought also, cross-category paths (kg/cypher recipes)"),
    new_code_cell(
        '''from kg.cypher import recipe, recipes

print([r.name for r in recipes()])
product = driver.execute_query(
    "MATCH (p:Product)-[:RELATED]->() RETURN p.id AS id ORDER BY id LIMIT 1", database_=db
).records[0]["id"]
related, _, _ = driver.execute_query(recipe("related_products"), product=product, k=5, database_=db)
[dict(r) for r in related]'''
    ),
    new_code_cell(
        '''bought, _, _ = driver.execute_query(recipe("who_bought_also"), product=product, k=5, database_=db)
[dict(r) for r in bought]'''
    ),
    new_code_cell(
        '''user = driver.execute_query(
    "MATCH (u:User)-[:INTERACTED]->() RETURN u.id AS id, count(*) AS n ORDER BY n DESC, id LIMIT 1",
    database_=db).records[0]["id"]
paths, _, _ = driver.execute_query(recipe("cross_category_paths"), user=user, level=1, k=5,
                                   database_=db)
affinity, _, _ = driver.execute_query(recipe("brand_affinity"), user=user, k=5, database_=db)
[dict(r) for r in paths], [dict(r) for r in affinity]'''
    ),
    new_markdown_cell(
        "## The same recipe in Neo4j's cypher-shell: `kgrec cypher`\n\n"
        "`kgrec cypher` runs Neo4j's own `cypher-shell` against the same server, logged in with "
        "the stored password: `-f` takes a recipe file or name and `-P name=value` its "
        "parameters (typed by the recipe's header; `k` has a default), `-c` one statement, "
        "`--format plain|verbose`. Without `-c`/`-f` it is the interactive shell; `kgrec browse` "
        "serves a page with an editor, a table and a graph view."
    ),
    new_code_cell(
        '''import subprocess
import sys


def kgrec_cypher(*args):
    """Run `kgrec cypher ARGS` (the notebook's own Python) and return its output."""
    done = subprocess.run([sys.executable, "-m", "kg", "cypher", *args, "--format", "plain"],
                          capture_output=True, text=True, check=True)
    return done.stdout


shell = kgrec_cypher("-f", "who_bought_also", "-P", f"product={product}", "-P", "k=5")
print(shell)
from_shell = [line.split(", ")[0].strip('"') for line in shell.splitlines()[1:]]
assert from_shell == [r["product_id"] for r in bought]  # the driver's answer above'''
    ),
    new_markdown_cell(
        "## Full-text search: the driver and `kgrec cypher` side by side\n\n"
        "Ingest creates the Neo4j full-text index `product_text` (Lucene BM25) over each "
        "product's title, description, brand names and category names."
    ),
    new_code_cell(
        '''driver.execute_query("CALL db.awaitIndexes(300)", database_=db)
search = """CALL db.index.fulltext.queryNodes('product_text', $words) YIELD node, score
RETURN node.id AS id, node.title AS title, score ORDER BY score DESC, id LIMIT 5"""
hits, _, _ = driver.execute_query(search, words="screws", database_=db)
print([(r["id"], r["title"], round(r["score"], 2)) for r in hits])
shell = kgrec_cypher("-c", search, "-P", "words=screws")
print(shell)
assert [line.split(", ")[0].strip('"') for line in shell.splitlines()[1:]] == [r["id"] for r in hits]'''
    ),
    new_markdown_cell(
        "The recipe `product_search` combines the two indexes: full-text hits, then their "
        "nearest products in the fused vector index."
    ),
    new_code_cell(
        '''found, _, _ = driver.execute_query(recipe("product_search"), query="steel screws", k=5, database_=db)
print([(r["product_id"], round(r["score"], 3), "via", r["via"]) for r in found])'''
    ),
    new_markdown_cell("## Vector indexes: nearest products by fused (GNN) and KG vectors"),
    new_code_cell(
        '''query = """MATCH (p:Product {id: $product})
CALL db.index.vector.queryNodes($index, 6, p[$prop]) YIELD node, score
WHERE node <> p
RETURN node.id AS id, node.title AS title, score ORDER BY score DESC"""
for index, prop in (("product_fused", "fused"), ("product_kge", "kge")):
    rows, _, _ = driver.execute_query(query, product=product, index=index, prop=prop, database_=db)
    print(index, [(r["id"], round(r["score"], 3)) for r in rows])'''
    ),
    new_code_cell("driver.close()"),
]


def main() -> None:
    for name, cells in (("engineer_walkthrough", ENGINEER), ("analyst_walkthrough", ANALYST)):
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
