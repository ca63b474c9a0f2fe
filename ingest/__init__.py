"""Reading shop data into canonical graph tables and loading them into Neo4j."""

from ingest.errors import IngestError, SourceError, ValidationError
from ingest.tables import GraphTables

__all__ = ["GraphTables", "IngestError", "SourceError", "ValidationError"]
