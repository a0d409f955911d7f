"""The declarative description of a dataset: everything the assets need to know about it.

One `DatasetSpec` per dataset module; assets, checks, sensors and maintenance are generated
from it, so adding a dataset never means copying asset code.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal, Union

import pyarrow as pa

from lake_pipelines.datasets.periods import (
    DEFAULT_HIVE_PARTITION_COLUMNS,
    check_calendar,
    check_hive_levels,
    check_partitioning,
    check_zone,
    default_transform,
    hive_level_names,
)
from lake_pipelines.errors import ConfigError, SpecError
from lake_pipelines.lake.period import Calendar, Granularity

if TYPE_CHECKING:
    import pandera.pandas as pdr

Transform = Literal["identity", "year", "month", "day", "hour"]
UnknownColumns = Literal["evolve", "freeze", "discard_value"]


# Column encodings pyarrow's writer takes by name (dictionary encoding is `dictionary=True`).
PARQUET_ENCODINGS = frozenset(
    {
        "PLAIN",
        "RLE",
        "DELTA_BINARY_PACKED",
        "DELTA_LENGTH_BYTE_ARRAY",
        "DELTA_BYTE_ARRAY",
        "BYTE_STREAM_SPLIT",
    }
)


@dataclass(frozen=True)
class ColumnCodec:
    """Parquet settings of one column; None means 'the writer default'.

    `encoding` (e.g. ``DELTA_BINARY_PACKED``, ``BYTE_STREAM_SPLIT``) replaces dictionary
    encoding for the column; asking for both is an error.
    """

    compression: str | None = None
    compression_level: int | None = None
    encoding: str | None = None
    dictionary: bool | None = None

    def __post_init__(self) -> None:
        if self.encoding and self.encoding not in PARQUET_ENCODINGS:
            raise ConfigError(
                "ColumnCodec.encoding",
                self.encoding,
                f"not one of {sorted(PARQUET_ENCODINGS)} (for dictionary encoding, say "
                "dictionary=True instead)",
            )
        if self.encoding and self.dictionary:
            raise ConfigError(
                "ColumnCodec.encoding",
                self.encoding,
                "with dictionary=True: a column is either dictionary-encoded or uses the given "
                "encoding; drop one of the two",
            )


@dataclass(frozen=True)
class CsvDialect:
    """How the dataset's CSV files are written."""

    delimiter: str = ","
    quote_char: str = '"'
    escape_char: str | None = None
    double_quote: bool = True
    header: bool = True
    null_values: tuple[str, ...] = ("", "NA", "NULL", "null")
    newlines_in_values: bool = True
    # Any text encoding Python knows ("latin-1", "cp1252", "utf-16", ...): other encodings
    # are converted to UTF-8 block by block as the file streams in.
    encoding: str = "utf8"

    def __post_init__(self) -> None:
        try:
            info = codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(
                "CsvDialect.encoding", self.encoding, "not a text encoding Python knows"
            ) from None
        if not getattr(info, "_is_text_encoding", True):
            raise ConfigError("CsvDialect.encoding", self.encoding, "a codec, not a text encoding")

    @property
    def is_utf8(self) -> bool:
        """UTF-8, with or without a byte-order mark (the readers take both as they are)."""
        return codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")


ChangeKind = Literal["rename", "drop", "move_first", "move_after"]


@dataclass(frozen=True)
class SchemaChange:
    """An explicit, reviewed change to an existing table: applied once, remembered by `id`.

    Adding a column needs no entry (a new field in the schema is added on the next run);
    renames, drops and moves do, because a name alone cannot tell them apart.

    Args:
        id: unique and stable, e.g. ``"2026-11-20-rename-url"``; recorded in the table.
        kind: rename, drop, move_first or move_after.
        column: the column as the table knows it before the change.
        to: the new name (rename) or the column to move after (move_after).
    """

    id: str
    kind: ChangeKind
    column: str
    to: str = ""


@dataclass(frozen=True)
class PartitionField:
    """One Iceberg partition field: a transform of a source column."""

    column: str
    transform: Transform = "day"


@dataclass(frozen=True)
class CompactionPolicy:
    """When a partition holds too many small files, and what compaction makes of them.

    Args:
        target_file_bytes: size on disk that compaction packs small files toward.
        small_file_ratio: a file smaller than this share of the target is "small".
        max_small_files: a partition with more small files than this is flagged by the
            table-health check (WARN) and compacted by the maintenance assets.
    """

    target_file_bytes: int = 128 << 20
    small_file_ratio: float = 0.75
    max_small_files: int = 4

    def __post_init__(self) -> None:
        if self.target_file_bytes < 1:
            raise ConfigError(
                "CompactionPolicy.target_file_bytes", self.target_file_bytes, "must be positive"
            )
        if not 0 < self.small_file_ratio <= 1:
            raise ConfigError(
                "CompactionPolicy.small_file_ratio", self.small_file_ratio, "must be in (0, 1]"
            )
        if self.max_small_files < 1:
            raise ConfigError(
                "CompactionPolicy.max_small_files", self.max_small_files, "must be at least 1"
            )

    @property
    def small_file_bytes(self) -> int:
        """Files below this many bytes on disk are small."""
        return int(self.target_file_bytes * self.small_file_ratio)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how it is stored, in one place.

    Args:
        name: dataset name; landing prefix, Hive directory and Iceberg table name.
        schema: the Arrow schema rows are read into (nested struct and list columns allowed).
        timestamp_column: the event time; daily partitions are days of this column (UTC).
        start_date: the first daily partition (``YYYY-MM-DD``). Each dataset has its own
            calendar: jobs, schedules, sensors and `lake_pipelines.backfill` select per
            dataset, so datasets of different ages live side by side.
        end_date: the day after the last partition, for a dataset that stopped (a past
            year of history); None: partitions run up to today.
        contract: a pandera schema over the scalar columns, or a function returning one
            (so that pandera is imported when a run validates, not when Dagster loads the
            code location); failing rows are quarantined.
        partitioning: Iceberg partition fields (default: day of the timestamp column).
        sort_by: sort order inside every file and of the Iceberg table.
        codecs: per-column Parquet settings that differ from the defaults.
        csv: CSV dialect of landed ``.csv`` files.
        namespace: Iceberg namespace of the dataset's tables.
        quarantine_threshold: largest share of quarantined rows (or of landed bytes in files
            rejected whole, whichever is larger) a partition may have before the blocking
            contract check fails it.
        unknown_columns: what to do with columns/keys the schema does not know.
        compaction: small-file thresholds and target file size of the maintenance assets.
        hive_partition_columns: the names of the bronze folders' year, month and day levels
            (``year=2026/month=01/day=05``), and hour level for an hourly dataset (a fourth
            name, ``hour`` if only three are given), which Hive readers add as columns. They
            must not be data columns too: a dataset with its own ``year``/``month``/``day``
            columns names the levels otherwise, e.g. ``("utc_year", "utc_month", "utc_day")``.
        granularity: ``daily`` (default) or ``hourly`` partitions (always UTC hours).
        timezone: the IANA zone of a daily dataset's days (default ``UTC``): its partition
            keys, landing and Hive folders are local days, its Iceberg table stays UTC,
            partitioned by ``hour(ts)`` so that a local day (23, 24 or 25 hours) is a set of
            whole partitions. A zone whose midnight is not on a whole UTC hour is refused.
    """

    name: str
    schema: pa.Schema
    timestamp_column: str
    start_date: str
    contract: Union[pdr.DataFrameSchema, Callable[[], pdr.DataFrameSchema]]  # noqa: UP007
    partitioning: tuple[PartitionField, ...] = ()
    sort_by: tuple[str, ...] = ()
    codecs: dict[str, ColumnCodec] = field(default_factory=dict)
    csv: CsvDialect = field(default_factory=CsvDialect)
    namespace: str = "lake"
    quarantine_threshold: float = 0.01
    unknown_columns: UnknownColumns = "freeze"
    schema_changes: tuple[SchemaChange, ...] = ()
    description: str = ""
    compaction: CompactionPolicy = field(default_factory=CompactionPolicy)
    hive_partition_columns: tuple[str, ...] = DEFAULT_HIVE_PARTITION_COLUMNS
    end_date: str | None = None
    granularity: Granularity = "daily"
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        columns = self.schema.names
        check_calendar(self)
        if self.timestamp_column not in columns:
            raise SpecError(
                self.name, "timestamp_column", self.timestamp_column, f"not in schema {columns}"
            )
        ts_type = self.schema.field(self.timestamp_column).type
        if not pa.types.is_timestamp(ts_type) or ts_type.tz is None:
            raise SpecError(
                self.name,
                "timestamp_column",
                self.timestamp_column,
                f"must be a UTC timestamp, not {ts_type}",
            )
        named = {
            "sort_by": self.sort_by,
            "codecs": tuple(self.codecs),
            "partitioning": tuple(p.column for p in self.partitioning),
        }
        for spec_field, names in named.items():
            for col in names:
                if col not in columns:
                    raise SpecError(
                        self.name, spec_field, col, f"unknown column (schema: {columns})"
                    )
        self._check_periods()
        check_hive_levels(self)

    def _check_periods(self) -> None:
        """Granularity and zone (`periods.check_zone`); the defaults they imply."""
        check_zone(self)
        if not self.partitioning:
            default = PartitionField(self.timestamp_column, default_transform(self))  # type: ignore[arg-type]
            object.__setattr__(self, "partitioning", (default,))
        check_partitioning(self)
        object.__setattr__(self, "hive_partition_columns", hive_level_names(self))

    @property
    def calendar(self) -> Calendar:
        """The dataset's partitions: granularity and zone (`lake.period`)."""
        return Calendar(self.granularity, self.timezone)

    @property
    def table_name(self) -> str:
        """Fully qualified Iceberg identifier of the silver table."""
        return f"{self.namespace}.{self.name}"

    @cached_property
    def pandera_schema(self) -> pdr.DataFrameSchema:
        """The contract as a pandera schema, built on first use."""
        c = self.contract
        # a schema is callable too, so tell them apart by `validate`
        return c if hasattr(c, "validate") else c()  # type: ignore[return-value]

    @property
    def unique_columns(self) -> list[str]:
        """Columns the contract declares unique: enforced across the whole day."""
        return [name for name, col in self.pandera_schema.columns.items() if col.unique]

    @property
    def landing_prefix(self) -> str:
        return f"landing/{self.name}"

    @property
    def bronze_prefix(self) -> str:
        return f"bronze/{self.name}"
