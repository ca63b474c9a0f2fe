"""``kgrec browse``: a local page for analysts (Cypher editor, table, graph view of Neo4j).

:mod:`kg.browse.app` serves the page on loopback; the page (``kg/browse/web``, built with npm
and esbuild into ``kg/browse/static`` by ``scripts/setup.sh``) connects to Neo4j itself with
the official JavaScript driver and draws graphs with cytoscape.js.
"""

from kg.browse.app import AssetsMissingError, create_app

__all__ = ["AssetsMissingError", "create_app"]
