"""Sources: each turns one input format into :class:`ingest.tables.GraphTables`."""
