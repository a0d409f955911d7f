"""Our exceptions: the context a user acts on is in the message and in fields."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import ColumnCodec, CompactionPolicy, PartitionField
from lake_pipelines.errors import (
    ArgumentError,
    BronzeReadError,
    ConfigError,
    LakeError,
    ObjectStoreError,
    RowAccountingError,
    SensorCursorError,
    SnapshotNotFoundError,
    SourceFileError,
    SpecError,
    TableCommitError,
    TableNotFoundError,
    TableReadError,
)
from lake_pipelines.lake.compaction.plan import CompactionError, UnreadableFile
from lake_pipelines.lake.landing import cursor
from lake_pipelines.lake.landing.cursor import LandingCursor

EVENTS = get_dataset("events")

EXAMPLES: list[tuple[LakeError, dict[str, object], str]] = [
    (
        ConfigError("LAKE_STORE_URL", "ftp://x", "unsupported scheme"),
        {"setting": "LAKE_STORE_URL", "value": "ftp://x", "reason": "unsupported scheme"},
        "setting LAKE_STORE_URL='ftp://x': unsupported scheme",
    ),
    (
        SpecError("events", "sort_by", "nope", "unknown column"),
        {"dataset": "events", "field": "sort_by", "setting": "events.sort_by", "value": "nope"},
        "dataset 'events': sort_by='nope': unknown column",
    ),
    (
        ObjectStoreError("s3://b/k", "open", TimeoutError("slow")),
        {"url": "s3://b/k", "action": "open"},
        "open s3://b/k failed: TimeoutError: slow",
    ),
    (
        SourceFileError("landing/a.csv", "column 'qty': bad", line=3, column="qty"),
        {"path": "landing/a.csv", "line": 3, "column": "qty", "reason": "column 'qty': bad"},
        "landing/a.csv:3: column 'qty': bad",
    ),
    (
        BronzeReadError("file:///lake/bronze/events/x.parquet", "cannot read its footer"),
        {"uri": "file:///lake/bronze/events/x.parquet", "reason": "cannot read its footer"},
        "file:///lake/bronze/events/x.parquet: cannot read its footer; re-run bronze for the day",
    ),
    (
        RowAccountingError("events 2026-11-01", 10, 8, 1, dataset="events", day=date(2026, 11, 1)),
        {"what": "events 2026-11-01", "read": 10, "written": 8, "quarantined": 1},
        "events 2026-11-01: rows read (10) != rows written (8) + rows quarantined (1)",
    ),
    (
        TableCommitError("lake.events", "commit failed after retries"),
        {"table": "lake.events", "reason": "commit failed after retries"},
        "table lake.events: commit failed after retries",
    ),
    (
        TableReadError("lake.events", "data file x is not on the lake's store", file="x"),
        {"table": "lake.events", "file": "x", "snapshot_id": None},
        "table lake.events: data file x is not on the lake's store",
    ),
    (
        SnapshotNotFoundError("lake.events", snapshot_id=12345),
        {"table": "lake.events", "snapshot_id": 12345, "tag": None},
        "table lake.events has no snapshot 12345",
    ),
    (
        SnapshotNotFoundError("lake.events", tag="nope", known={"main": 1, "day-x": 2}),
        {"table": "lake.events", "tag": "nope", "known": ["day-x", "main"]},
        "table lake.events has no tag or branch 'nope' (known: day-x, main)",
    ),
    (
        SnapshotNotFoundError("lake.events", as_of=datetime(2026, 1, 1, tzinfo=UTC)),
        {"as_of": datetime(2026, 1, 1, tzinfo=UTC), "snapshot_id": None},
        "table lake.events had no snapshot at 2026-01-01T00:00:00+00:00",
    ),
    (
        SnapshotNotFoundError(
            "lake.events",
            as_of=datetime(2026, 1, 1, tzinfo=UTC),
            span=(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ),
        {"span": (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC))},
        "(its snapshots were committed from 2026-02-01T00:00:00 to 2026-02-03T04:05:06 UTC)",
    ),
    (
        TableNotFoundError("events", ["lake.orders", "lake.events"]),
        {"table": "events", "known": ["lake.events", "lake.orders"]},
        "table events: no such table: a table name has its namespace, e.g. lake.events "
        "(tables: lake.events, lake.orders)",
    ),
    (
        TableNotFoundError("lake.nope", []),
        {"table": "lake.nope", "known": []},
        "table lake.nope: no such table (tables: none yet (run `make demo`))",
    ),
    (
        ArgumentError("--as-of-time", "yesterday", "not an ISO time"),
        {"option": "--as-of-time", "value": "yesterday", "reason": "not an ISO time"},
        "--as-of-time 'yesterday': not an ISO time",
    ),
    (
        SensorCursorError("events_landing_sensor", "version 7"),
        {"sensor": "events_landing_sensor", "reason": "version 7"},
        "dagster sensor cursor events_landing_sensor --delete",
    ),
    (
        CompactionError("bronze/events/year=2026", "rows differ"),
        {"partition": "bronze/events/year=2026", "reason": "rows differ"},
        "compaction of bronze/events/year=2026: rows differ",
    ),
    (
        UnreadableFile("year=2026/month=11/day=03", "bronze/part-1.parquet", OSError("gone")),
        {"partition": "year=2026/month=11/day=03", "path": "bronze/part-1.parquet"},
        "compaction of year=2026/month=11/day=03: bronze/part-1.parquet cannot be read (gone); "
        "nothing was changed",
    ),
]
IDS = [type(e[0]).__name__ for e in EXAMPLES]


@pytest.mark.parametrize("exc, fields, message", EXAMPLES, ids=IDS)
def test_errors_expose_their_context_as_fields(
    exc: LakeError, fields: dict[str, object], message: str
) -> None:
    assert isinstance(exc, LakeError)
    assert {k: getattr(exc, k) for k in fields} == fields
    assert message in str(exc)


@pytest.mark.parametrize("exc, fields, message", EXAMPLES, ids=IDS)
def test_errors_survive_pickling_with_their_fields(
    exc: LakeError, fields: dict[str, object], message: str
) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc)
    assert {k: getattr(back, k) for k in fields} == fields


def test_the_hierarchy_lets_callers_catch_by_kind() -> None:
    assert issubclass(SpecError, ConfigError)
    assert issubclass(SnapshotNotFoundError, TableReadError)
    assert issubclass(TableNotFoundError, TableReadError)
    assert not issubclass(TableReadError, TableCommitError)
    assert cursor.SensorCursorError is SensorCursorError  # still importable where it was


@pytest.mark.parametrize(
    "change, field, value",
    [
        ({"timestamp_column": "when"}, "timestamp_column", "when"),
        ({"timestamp_column": "event_id"}, "timestamp_column", "event_id"),
        ({"sort_by": ("ts", "nope")}, "sort_by", "nope"),
        ({"partitioning": (PartitionField("nope"),)}, "partitioning", "nope"),
        ({"codecs": {"nope": ColumnCodec()}}, "codecs", "nope"),
    ],
)
def test_a_bad_spec_names_the_dataset_and_the_field(
    change: dict[str, Any], field: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"dataset 'events': {field}='{value}'") as info:
        replace(EVENTS, **change)
    assert isinstance(info.value, SpecError)
    assert (info.value.dataset, info.value.field, info.value.value) == ("events", field, value)


def test_a_naive_timestamp_column_is_a_spec_error() -> None:
    schema = EVENTS.schema.set(
        EVENTS.schema.get_field_index("ts"), pa.field("ts", pa.timestamp("us"))
    )
    with pytest.raises(SpecError, match="must be a UTC timestamp, not timestamp"):
        replace(EVENTS, schema=schema)


@pytest.mark.parametrize(
    "args, setting",
    [
        ({"target_file_bytes": 0}, "CompactionPolicy.target_file_bytes"),
        ({"small_file_ratio": 1.5}, "CompactionPolicy.small_file_ratio"),
        ({"max_small_files": 0}, "CompactionPolicy.max_small_files"),
    ],
)
def test_a_bad_compaction_policy_names_the_setting(args: dict[str, float], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        CompactionPolicy(**args)  # type: ignore[arg-type]
    assert info.value.setting == setting and info.value.value == next(iter(args.values()))


def test_an_unreadable_cursor_names_the_sensor() -> None:
    with pytest.raises(SensorCursorError) as info:
        LandingCursor.parse('{"v": 1, "hw": "x"}', "events_landing_sensor")
    assert info.value.sensor == "events_landing_sensor"
    assert info.value.reason.startswith("ValueError")
