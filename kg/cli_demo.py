"""``kgrec demo``: the whole pipeline on the embedded default (local Neo4j, synthetic shop).

It starts the local Neo4j (unless one runs already, or ``NEO4J_URI`` names a server),
generates a seeded synthetic shop, loads it, exports it back and checks the round trip, runs a
few analyst queries, trains TransE embeddings and writes them back with a vector index, trains
the fusion GNN (MiniLM text + TransE + graph) and compares it with two baselines, writes
RELATED edges and fused vectors, prints related, personalised and cross-category products with
their explanations, and stops the server it started.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["register"]

# Analyst-style queries the demo prints. Literal Cypher with $parameters only.
_TOP_CATEGORIES = """
MATCH (c:Category {level: $level})<-[:SUBCATEGORY_OF*0..]-(:Category)<-[:IN_CATEGORY]-(p:Product)
      <-[r:INTERACTED]-(:User)
RETURN c.name AS category, count(r) AS interactions
ORDER BY interactions DESC, category LIMIT $k
"""
_ALSO_BOUGHT = """
MATCH (p:Product {id: $product})<-[:INTERACTED]-(u:User)-[:INTERACTED]->(other:Product)
WHERE other <> p
RETURN other.id AS product, other.title AS title, count(DISTINCT u) AS users
ORDER BY users DESC, product LIMIT $k
"""
_KGE_NEIGHBOURS = """
MATCH (p:Product {id: $product})
CALL db.index.vector.queryNodes('product_kge', 6, p.kge) YIELD node, score
WITH p, node, score WHERE node <> p
MATCH (node)-[:IN_CATEGORY]->(c:Category)
RETURN node.id AS id, node.title AS title, c.name AS category, score ORDER BY score DESC
"""
_POPULAR = "MATCH (p:Product)<-[r:INTERACTED]-() RETURN p.id AS id, count(r) AS n ORDER BY n DESC, id LIMIT 1"


def cmd_demo(args: argparse.Namespace) -> int:
    from ingest.neo4j_export import export_graph
    from ingest.neo4j_writer import graph_counts, write_graph
    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from kg.cli import _local
    from kg.neo4j.driver import open_driver
    from kg.neo4j.settings import settings_from_env

    started_here = None
    settings = settings_from_env()
    if settings is None:
        server = _local(args)
        info = server.status()
        if info is None:
            print(f"starting the local Neo4j (home {server.home}) ...", flush=True)
            info = server.start()
            started_here = server
            print(f"Neo4j ready at {info.uri} in {info.ready_seconds:.1f} s")
        else:
            print(f"using the running local Neo4j at {info.uri}")
        settings = server.settings(info)
    else:
        print(f"using NEO4J_URI={settings.uri}")
    try:
        show = not args.no_progress
        config = SyntheticConfig.preset(args.preset, seed=args.seed)
        t0 = time.perf_counter()
        shop = generate_shop(config, show_progress=show)
        counts = {k: v for k, v in shop.counts().items() if v}
        print(
            f"synthetic shop ({args.preset}, seed {args.seed}) in {time.perf_counter() - t0:.1f} s: "
            + ", ".join(f"{k}={v:,}" for k, v in counts.items())
        )
        out = Path(args.workdir)
        shop.save(out / "tables")
        with open_driver(settings) as driver:
            report = write_graph(driver, shop, database=settings.database, show_progress=show)
            print(f"loaded into Neo4j in {report.total_seconds:.1f} s")
            print(f"graph: {graph_counts(driver, database=settings.database)}")
            back = export_graph(driver, database=settings.database, show_progress=show)
            same = back.fingerprint() == shop.fingerprint()
            print(f"export from Neo4j equals the generated tables: {same}")
            if not same:
                print("kgrec: error: the exported graph differs from the loaded tables")
                return 1
            records, _, _ = driver.execute_query(
                _TOP_CATEGORIES, level=1, k=5, database_=settings.database
            )
            print("top departments by interactions:")
            for r in records:
                print(f"  {r['category']:<30} {r['interactions']:>8,}")
            popular, _, _ = driver.execute_query(_POPULAR, database_=settings.database)
            product = popular[0]["id"]
            records, _, _ = driver.execute_query(
                _ALSO_BOUGHT, product=product, k=5, database_=settings.database
            )
            print(f"who bought {product} also bought:")
            for r in records:
                print(f"  {r['product']:<10} {r['users']:>4} users  {r['title']}")
            # KG embeddings on the exported graph, written back with a vector index.
            from kg.embeddings.pipeline import embed_graph
            from kg.embeddings.train import EmbedConfig
            from kg.embeddings.writeback import write_embeddings

            config = EmbedConfig(model="transe", dim=32, epochs=args.kge_epochs, batch_size=512,
                                 lr=0.02, eval_every=10, seed=args.seed)  # fmt: skip
            # the demo trains afresh each run: its graph may differ from the last run's
            emb = embed_graph(back, config, out / "kge-transe", restart=True, show_progress=show)
            test = emb.config["metrics"]["test"]
            print(
                f"TransE embeddings: {emb.config['training']['epochs_trained']} epochs in "
                f"{emb.config['training']['train_seconds']:.1f} s; held-out link prediction "
                f"MRR {test['mrr']:.3f}, Hits@10 {test['hits_at_10']:.3f}"
            )
            write_embeddings(driver, emb, database=settings.database, show_progress=show)
            records, _, _ = driver.execute_query(
                _KGE_NEIGHBOURS, product=product, database_=settings.database
            )
            print(f"nearest to {product} in the product_kge vector index:")
            for r in records:
                print(f"  {r['id']:<10} {r['score']:.3f}  {r['category']:<28} {r['title']}")
            _train_fusion(back, out, args)
            _query_layer(driver, settings.database, back, out, product)
        print(f"artifacts saved in {out}")
    finally:
        if started_here is not None:
            started_here.stop()
            print("local Neo4j stopped")
    return 0


def _train_fusion(tables: object, out: Path, args: argparse.Namespace) -> None:
    """Text features (MiniLM, cached) + the TransE vectors + the graph -> the fusion GNN."""
    from gnn.evaluate import evaluate
    from gnn.model import FusionConfig
    from gnn.pipeline import train_fusion
    from kg.embeddings.artifact import KGEmbeddings

    print("fusion GNN: encoding product texts (cached in ~/.kgrec/cache/text) and training ...")
    config = FusionConfig(max_epochs=args.gnn_epochs, batch_size=2048, lr=5e-3, patience=3)
    result = train_fusion(
        tables,  # type: ignore[arg-type]
        out / "fusion",
        config,
        kge=KGEmbeddings.load(out / "kge-transe"),
        seed=args.seed,
        show_progress=not args.no_progress,
    )
    fit = result.model.fit_info
    test = result.metrics["test"]
    print(
        f"fusion GNN: {fit['epochs_run']} epochs (best {fit['best_epoch']}) in "
        f"{fit['seconds']:.1f} s, co-occurrence blend {fit['blend']}, similarity weights "
        f"{fit.get('similarity_weights') or 'none'}; leave-one-out test "
        f"NDCG@10 {test['ndcg@10']:.4f}, Recall@10 {test['recall@10']:.4f}"
    )
    from gnn.baselines import ItemCooccurrence, MostPopular

    for name, scorer in (("most popular", MostPopular()), ("co-occurrence", ItemCooccurrence())):
        scorer.fit(result.split)
        ndcg = evaluate(scorer, result.split, ks=(10,), show_progress=False)["ndcg@10"]
        print(f"  baseline {name:<14} test NDCG@10 {ndcg:.4f}")
    print(f"  model and training curve in {result.folder}")


def _query_layer(driver: object, database: str, tables: object, out: Path, product: str) -> None:
    """Related, personalised and cross-category products with explanations; RELATED edges."""
    from kg.cypher import recipe
    from kg.query import Recommender
    from kg.query.writeback import write_fused_vectors, write_related

    rec = Recommender.load(out / "fusion", tables)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    edges = write_related(driver, rec, k=10, database=database, show_progress=False)  # type: ignore[arg-type]
    write_fused_vectors(driver, rec, database=database, show_progress=False)  # type: ignore[arg-type]
    print(
        f"wrote {edges:,} RELATED edges and fused vectors (index product_fused) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    print(f"related to {product} (Python API; the same ranking is in Neo4j as RELATED edges):")
    for r in rec.related(product, k=5, paths=True):
        print(f"  {r.rank}. {r.product_id:<10} {r.score:.3f}  {r.title}  [{r.reason}]")
    records, _, _ = driver.execute_query(  # type: ignore[attr-defined]
        recipe("related_products"), product=product, k=3, database_=database
    )
    print("  in Cypher (kg/cypher/related_products.cypher): " + ", ".join(
        f"{r['product_id']} ({r['score']:.3f})" for r in records
    ))  # fmt: skip
    # A user with a history of median length, for a readable example.
    import numpy as np

    sizes = np.diff(rec.index.hist_indptr)
    user = rec.index.user_ids[int(np.argsort(sizes, kind="stable")[sizes.size // 2])]
    print(f"recommended for user {user}:")
    for r in rec.recommend(user, k=5):
        print(f"  {r.rank}. {r.product_id:<10} {r.score:.3f}  {r.title}")
        paths = rec.explain(user, r.product_id, max_paths=1)
        if paths:
            print(f"       because {paths[0]}")
    print(f"from departments user {user} has not bought in (cross-category):")
    for r in rec.cross_category(user, k=3, level=1):
        print(f"  {r.rank}. {r.product_id:<10} {r.score:.3f}  {r.title}")
        if r.path is not None:
            print(f"       via {r.path}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``kgrec`` parser."""
    p = sub.add_parser("demo", help="run the demo pipeline on a synthetic shop and the local Neo4j")
    p.add_argument("--preset", default="demo", choices=["tiny", "demo", "bench"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="runs/demo", help="where artifacts go (default runs/demo)")
    p.add_argument("--home", help="local Neo4j home (default ~/.kgrec/neo4j)")
    p.add_argument("--port", type=int, help="local Neo4j Bolt port (default 7687)")
    p.add_argument("--kge-epochs", type=int, default=60, help="TransE epochs (default 60)")
    p.add_argument("--gnn-epochs", type=int, default=20, help="most fusion GNN epochs (default 20)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
