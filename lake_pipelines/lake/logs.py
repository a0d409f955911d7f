"""Log lines of the data path that say what they are about: dataset, day, file.

Each line carries its context twice: in the message, for a person reading the run's log, and
as `extra` fields (`context`), which a JSON formatter (Dagster's ``json_console_logger``, or
any formatter that emits a record's attributes) writes as fields. The engine logs under
``lake_pipelines.*``; the shipped dagster.yaml hands those loggers to Dagster, so the lines
appear in each run's log in the UI too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lake_pipelines.lake.period import Unit

if TYPE_CHECKING:
    from lake_pipelines.lake.ingest.batches import Reject
    from lake_pipelines.lake.storage import FileEntry

QUARANTINE_REASONS_LOGGED = 3  # per file; the quarantine file has every one
# Clean landed files (nothing quarantined) listed one line each per day; past this, one line
# counts the rest. Each line is an event in Dagster's event log (a database write), and a day
# of thousands of small files would write thousands of them; the day's lineage manifest still
# lists every file with its rows. Files with quarantined rows always get their line.
CLEAN_FILES_LISTED = 50
# Record attributes a formatter can emit; prefixed where a plain name would clash with
# LogRecord's own (``filename``, ``module``, ...).
FIELDS = ("dataset", "day", "layer", "file", "table")


def context(
    dataset: str,
    day: Unit | str | None = None,
    *,
    layer: str | None = None,
    file: str | None = None,
    table: str | None = None,
    **numbers: Any,
) -> dict[str, Any]:
    """The `extra` of a data-path log line: its context fields and its numbers."""
    fields: dict[str, Any] = {"dataset": dataset, "layer": layer, "file": file, "table": table}
    fields["day"] = day if day is None or isinstance(day, str) else day.isoformat()
    return {**{k: v for k, v in fields.items() if v is not None}, **numbers}


def logger(name: str) -> logging.Logger:
    """The logger of an engine module (``lake_pipelines.lake.bronze``, ...)."""
    return logging.getLogger(name)


def landed_file(
    log: logging.Logger,
    dataset: str,
    day: Unit,
    uri: str,
    src: FileEntry,
    read: int,
    written: int,
    rejects: list[Reject],
) -> None:
    """One line per landed file bronze took in: a warning when rows of it were quarantined
    (with the first reasons), never one per row."""
    extra = context(
        dataset,
        day,
        layer="bronze",
        file=src.key,
        bytes_read=src.size,
        rows_read=read,
        rows_written=written,
        rows_quarantined=len(rejects),
    )
    if not rejects:
        log.info("%s %s: %s: %d rows", dataset, day, uri, read, extra=extra)
        return
    shown = rejects[:QUARANTINE_REASONS_LOGGED]
    reasons = "; ".join(
        (f"line {r.line}" if r.line is not None else f"record {r.record}")
        + (f" {r.column}" if r.column else "")
        + f": {r.reason}"
        for r in shown
    )
    log.warning(
        "%s %s: %s: %d rows read, %d quarantined (%s%s)",
        dataset,
        day,
        uri,
        read,
        len(rejects),
        reasons,
        "; ..." if len(rejects) > len(shown) else "",
        extra=extra,
    )


def unlisted_files(
    log: logging.Logger, dataset: str, day: Unit, files: int, rows: int, bytes_read: int
) -> None:
    """One line for the clean files of a day past `CLEAN_FILES_LISTED`."""
    if not files:
        return
    extra = context(
        dataset, day, layer="bronze", files_unlisted=files, rows_read=rows, bytes_read=bytes_read
    )
    log.info(
        "%s %s: %d more files read with nothing quarantined, %d rows (not listed one by one "
        "past %d; the day's lineage manifest lists every file)",
        dataset,
        day,
        files,
        rows,
        CLEAN_FILES_LISTED,
        extra=extra,
    )


def rejected_file(
    log: logging.Logger, dataset: str, day: Unit, uri: str, src: FileEntry, reason: str
) -> None:
    """A landed file that could not be read at all: quarantined whole, a warning."""
    extra = context(dataset, day, layer="bronze", file=src.key, bytes_read=src.size)
    log.warning(
        "%s %s: %s quarantined whole (%d bytes): %s",
        dataset,
        day,
        uri,
        src.size,
        reason,
        extra=extra,
    )
