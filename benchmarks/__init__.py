"""Side-by-side benchmarks of our data path against DuckDB, Polars, pyarrow and DataFusion.

`make bench` (full scale) and `make bench-quick` (small sizes) run ``python -m benchmarks``.
Every engine run is its own process; numbers are written to ``benchmarks/RESULTS.md``.
"""
