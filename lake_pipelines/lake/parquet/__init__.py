"""Parquet written on purpose: writer options, encodings, the rolling writer, sorting."""
