"""landlink spatial library: ingestion, linkage, rules and plans. Knows nothing of HTTP."""
