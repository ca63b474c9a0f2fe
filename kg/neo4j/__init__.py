"""Neo4j: the local server kgrec starts itself, and the one place that opens a driver."""
