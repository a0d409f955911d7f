"""Compaction of small files: plan, rewrite, the Hive swap and the Iceberg commit."""
