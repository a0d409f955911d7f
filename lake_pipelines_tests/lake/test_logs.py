"""Data-path log lines: one per landed file, naming dataset, day and file, as text and fields."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events

SPEC = get_dataset("events")
DAY = date(2026, 11, 3)


def _field(record: logging.LogRecord, name: str) -> Any:
    """A field the log call set on `record` through its `extra` (`logs.context`)."""
    return record.__dict__[name]


def test_bronze_logs_one_line_per_file_and_summarises_its_quarantined_rows(
    local_store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    (landed,) = generate_events(local_store, DAY, days=1, rows_per_day=300, seed=41)
    with caplog.at_level(logging.INFO, logger="lake_pipelines"):
        report = ingest_day(local_store, SPEC, DAY)
    lines = [r for r in caplog.records if r.name == "lake_pipelines.lake.bronze"]
    # one line per landed file, whatever the number of rows quarantined
    assert sorted(_field(r, "file") for r in lines) == sorted(s.key for s in report.sources)
    assert {(_field(r, "dataset"), _field(r, "day"), _field(r, "layer")) for r in lines} == {
        (SPEC.name, DAY.isoformat(), "bronze")
    }
    for r in lines:
        assert SPEC.name in r.getMessage() and DAY.isoformat() in r.getMessage()
        assert _field(r, "file") in r.getMessage()
    warned = [r for r in lines if r.levelno == logging.WARNING]
    rejected = {x.source for x in report.rejects} | {x.source for x in report.file_rejects}
    assert {_field(r, "file") for r in warned} == rejected
    assert sum(getattr(r, "rows_quarantined", 0) for r in warned) == landed.bad_rows > 0
    assert len(warned) < landed.bad_rows + landed.bad_files  # a summary, not a line per row
    whole = [r for r in warned if "quarantined whole" in r.getMessage()]
    assert len(whole) == landed.bad_files == 1


def test_past_the_cap_clean_files_are_counted_in_one_line_and_problem_files_still_listed(
    local_store: ObjectStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day of many small files must not write an event per clean file into Dagster's log."""
    from lake_pipelines.lake import logs

    monkeypatch.setattr(logs, "CLEAN_FILES_LISTED", 1)
    generate_events(local_store, DAY, days=1, rows_per_day=300, seed=41)
    with caplog.at_level(logging.INFO, logger="lake_pipelines"):
        report = ingest_day(local_store, SPEC, DAY)
    lines = [r for r in caplog.records if r.name == "lake_pipelines.lake.bronze"]
    rejected = {x.source for x in report.rejects} | {x.source for x in report.file_rejects}
    clean = [f for f in report.lineage if f.path not in rejected]
    assert len(clean) == 2 and len(rejected) == 3
    per_file = [r for r in lines if getattr(r, "file", None)]
    assert {_field(r, "file") for r in per_file if r.levelno == logging.WARNING} == rejected
    listed = [_field(r, "file") for r in per_file if r.levelno == logging.INFO]
    assert listed == [clean[0].path]
    (summary,) = [r for r in lines if hasattr(r, "files_unlisted")]
    assert summary.files_unlisted == 1
    assert _field(summary, "rows_read") == clean[1].rows_read > 0
    assert "1 more files" in summary.getMessage()
    # what the log leaves out, the day's manifest keeps
    assert {f.path for f in report.lineage} == {s.key for s in report.sources}
