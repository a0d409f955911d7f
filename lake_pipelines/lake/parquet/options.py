"""Writer settings from a dataset spec: codecs, levels, dictionaries, row-group and file sizes,
and the schema (with lineage metadata) every file carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines import __version__
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import ConfigError

DEFAULT_CODEC = "zstd"
# ZSTD(1), Arrow's own default, for the Hive Parquet of bronze (and its compaction). Against
# ZSTD(3) on the 20M-row events day (ANALYSIS.md, run 33): encoding ~17 % less CPU, files ~4 %
# smaller, a bronze day ~4 % less CPU; on TPC-H lineitem level 3 is 4 % smaller for 22 % more
# CPU. Iceberg tables write at their own `write.parquet.compression-level`, 3 for the lake's
# (`iceberg.tables.DEFAULT_PROPERTIES`): silver files at level 1 raised the peak of gold's
# DataFusion scans of the day by 130-290 MiB (run 33). A spec may name a level per column.
DEFAULT_LEVEL = 1
# Iceberg's codec names (`write.parquet.compression-codec`) as pyarrow spells them.
ICEBERG_CODECS = {
    "zstd": "zstd",
    "gzip": "gzip",
    "snappy": "snappy",
    "lz4": "lz4",
    "brotli": "brotli",
    "uncompressed": "none",
    "none": "none",
}
# In memory (uncompressed Arrow) before a row group is flushed: ~210k events rows, ~6 MiB on
# disk (DuckDB writes 122,880-row groups, Polars 262,144). One group is encoded while the next
# fills, so this is also most of the conversion's working set.
ROW_GROUP_BYTES = 32 << 20
TARGET_FILE_BYTES = 256 << 20  # on disk; a file is closed once it reaches this
# Row groups encoded at once (a file each), in bronze and in silver: Parquet encoding is the
# single busiest step of both, and pyarrow encodes a row group on one core.
ENCODERS = 2
CREATED_BY = f"lake_pipelines {__version__}"


def _leaf_paths(field_: pa.Field, prefix: str = "") -> list[str]:
    """Parquet column paths under an Arrow field (``properties.browser``, ``xs.list.element``)."""
    path = f"{prefix}{field_.name}"
    t = field_.type
    if pa.types.is_struct(t):
        return [p for i in range(t.num_fields) for p in _leaf_paths(t.field(i), path + ".")]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _leaf_paths(pa.field("element", t.value_type), path + ".list.")
    if pa.types.is_map(t):
        return [f"{path}.key_value.key", f"{path}.key_value.value"]
    return [path]


def writer_options(
    spec: DatasetSpec,
    schema: pa.Schema | None = None,
    table_properties: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `pyarrow.parquet.ParquetWriter` from the dataset's codecs.

    `schema` (default: the spec's) may carry extra columns (``evolve`` mode): they get the
    default codec. An Iceberg table's `table_properties` (``write.parquet.compression-codec``
    and ``-level``) replace the defaults for the columns whose codec the spec leaves open.

    Raises:
        ConfigError: the table names a codec or level this writer does not know.
    """
    default_codec, default_level = _table_codec(table_properties or {})
    compression: dict[str, str] = {}
    levels: dict[str, int] = {}
    dictionary: list[str] = []
    encodings: dict[str, str] = {}
    for f in schema if schema is not None else spec.schema:
        codec = spec.codecs.get(f.name)
        for leaf in _leaf_paths(f):
            named = codec.compression if codec else None
            compression[leaf] = named or default_codec
            level = codec.compression_level if codec and codec.compression_level else None
            if not named:
                level = level or default_level
            if compression[leaf] == "zstd":
                levels[leaf] = level or DEFAULT_LEVEL
            elif level and compression[leaf] in ("gzip", "brotli"):
                levels[leaf] = level  # else pyarrow's own default for the codec
            # Dictionary encoding is on unless the spec says no or names another encoding:
            # pyarrow falls back to plain pages by itself when a dictionary grows too big.
            if codec and codec.encoding:
                encodings[leaf] = codec.encoding
            elif codec is None or codec.dictionary is not False:
                dictionary.append(leaf)
    opts: dict[str, Any] = {
        "compression": compression,
        "use_dictionary": dictionary,
        "write_statistics": True,
        "write_page_index": True,
        "version": "2.6",
        "data_page_version": "2.0",
    }
    if levels:
        opts["compression_level"] = levels
    if encodings:
        opts["column_encoding"] = encodings
    if spec.sort_by:
        order = [(c, "ascending") for c in spec.sort_by]
        opts["sorting_columns"] = pq.SortingColumn.from_ordering(spec.schema, order)
    return opts


def _table_codec(properties: Mapping[str, str]) -> tuple[str, int | None]:
    """(codec, level) an Iceberg table's properties ask for: the default codec where they
    name none, None for the level where they name none. `writer_options` applies the level
    only to the columns written with the table's codec (not to those the spec names one for)."""
    raw = properties.get("write.parquet.compression-codec", DEFAULT_CODEC).strip().lower()
    codec = ICEBERG_CODECS.get(raw)
    if codec is None:
        raise ConfigError(
            "write.parquet.compression-codec", raw, f"not one of {sorted(ICEBERG_CODECS)}"
        )
    level_raw = properties.get("write.parquet.compression-level")
    if level_raw in (None, ""):
        return codec, None
    try:
        level = int(level_raw)
    except ValueError:
        raise ConfigError(
            "write.parquet.compression-level", level_raw, "must be an integer"
        ) from None
    return codec, level


def file_schema(spec: DatasetSpec) -> pa.Schema:
    """The schema stored in every file: the spec's, with lineage in the key-value metadata.

    pyarrow does not let us set the footer's ``created_by`` (it always names parquet-cpp), so
    the writer is recorded under the ``created_by`` metadata key as well.
    """
    meta = dict(spec.schema.metadata or {})
    meta[b"created_by"] = CREATED_BY.encode()
    meta[b"lake_pipelines.dataset"] = spec.name.encode()
    return pa.schema([f.with_nullable(True) for f in spec.schema], metadata=meta)
