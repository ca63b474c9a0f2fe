"""kgrec's knowledge-graph layer: Neo4j server and driver, KG embeddings, the query layer, the CLI."""

__version__ = "0.1.0"
