"""Compaction of small files: plan, one driver + options, rewrite, Hive swap, Iceberg commit.

- `options`: `CompactionOptions`, a run's mode and tuning.
- `driver`: `compact_layer`, recover → plan → select → compact (or dry-run report), for both
  layers through `LayerCompactor`.
- `plan`: file statistics and bin packing; `report`: per-partition results and run totals;
  `health`: small-file health from the plans.
- `rewrite`, `external_sort`, `verify`: a bin's rows sorted into new files, checked row by row.
- `hive` (entry point `compact_hive`), with `hive_footers` (planning), `hive_bins` (the
  rewrite into temporaries) and `hive_journal` (the crash-safe swap and its recovery).
- `iceberg` (entry point `compact_iceberg`), with `iceberg_plan` (planning from manifests) and
  `iceberg_filter` (the commit's one-partition conflict scope).
"""
