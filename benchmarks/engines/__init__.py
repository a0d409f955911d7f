"""One module per engine, each with the same functions: ``csv_to_parquet``,
``ndjson_to_parquet``, ``compact``, ``daily_metrics`` (where the engine takes part)."""
