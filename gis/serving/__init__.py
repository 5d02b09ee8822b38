"""What the service reads out: the collection registry (``collections``), OGC API Features items
queries (``features_sql``) with CQL2 filters (``cql2``), vector tiles (``tiles``), file exports
(``export``) and search (``search``). Readers only: nothing here writes derived state."""
