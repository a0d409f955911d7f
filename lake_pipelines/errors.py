"""The exceptions lake_pipelines raises: each names what a user has to look at.

Library errors (pyarrow, pyiceberg, fsspec, DataFusion) are caught at the boundary and re-raised
as one of these. The context is in the message and, for code that handles the error (the
quarantine, the CLI, a sensor), in fields set by the constructor::

    LakeError
    ├── ConfigError(setting, value, reason)
    │   └── SpecError(dataset, field, value, reason)
    ├── ArgumentError(option, value, reason)       a command-line argument (the CLI's)
    ├── ObjectStoreError(url, action, cause)
    ├── SourceFileError(path, reason, line, column)
    ├── RowAccountingError(what, read, written, quarantined, dataset, day)
    ├── TableCommitError(table, reason)
    ├── TableReadError(table, reason, snapshot_id, file)
    │   ├── TableNotFoundError(table, known)
    │   └── SnapshotNotFoundError(table, snapshot_id | tag | as_of, known, span)
    ├── SensorCursorError(sensor, reason)
    └── CompactionError(partition, reason)      in lake/compaction/plan.py
        └── UnreadableFile(partition, path, cause)  an input gone or corrupt when read
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lake_pipelines.lake.period import Period


class LakeError(Exception):
    """Base class of every error lake_pipelines raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The constructors take fields, not the message: rebuild from the message and the
        # fields so that a pickled error (a worker process, a cache) keeps both.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[LakeError], args: tuple[Any, ...], fields: dict[str, Any]) -> LakeError:
    exc = cls.__new__(cls, *args)
    Exception.__init__(exc, *args)
    exc.__dict__.update(fields)
    return exc


class ConfigError(LakeError):
    """A setting is missing or has a value we cannot use."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"setting {self.setting}={self.value!r}: {self.reason}"


class QueryMemoryError(ConfigError):
    """A DataFusion query needed more memory than ``LAKE_DF_MEMORY_LIMIT`` lets its session
    have, and its operators could not spill the rest (e.g. one group's distinct values)."""

    def __init__(self, what: str, limit: int, detail: str) -> None:
        self.what = what
        self.limit = limit
        shown = f"{limit / (1 << 20):,.0f} MiB" if limit >= 1 << 20 else f"{limit:,} bytes"
        super().__init__(
            "LAKE_DF_MEMORY_LIMIT",
            shown,
            f"{what} needs more memory than the limit allows and could not spill the rest "
            f"({detail}); raise LAKE_DF_MEMORY_LIMIT (e.g. 2GiB or 50%), or 0 for no limit",
        )


class SpecError(ConfigError):
    """A dataset spec (``datasets/<name>.py``) is inconsistent; `field` is the one to fix.

    ``setting`` is ``<dataset>.<field>``.
    """

    def __init__(self, dataset: str, field: str, value: object, reason: str) -> None:
        self.dataset = dataset
        self.field = field
        super().__init__(f"{dataset}.{field}", value, reason)

    def _message(self) -> str:
        return f"dataset {self.dataset!r}: {self.field}={self.value!r}: {self.reason}"


class ArgumentError(LakeError):
    """A command-line argument has a value we cannot use; `reason` says what would do."""

    def __init__(self, option: str, value: object, reason: str) -> None:
        self.option = option
        self.value = value
        self.reason = reason
        super().__init__(f"{option} {value!r}: {reason}")


class ObjectStoreError(LakeError):
    """An object store operation failed after its retries."""

    def __init__(self, url: str, action: str, cause: BaseException) -> None:
        self.url = url
        self.action = action
        self.cause = cause
        super().__init__(f"{action} {url} failed: {type(cause).__name__}: {cause}")


class SourceFileError(LakeError):
    """A landed file cannot be read at all (bad encoding, truncated archive, broken JSON).

    `reason` is complete on its own (it is what the quarantine records); `column` is set when
    one column is to blame.
    """

    def __init__(
        self, path: str, reason: str, line: int | None = None, column: str | None = None
    ) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class BronzeReadError(LakeError):
    """A bronze file of a day cannot be read (its footer or its rows) by a later layer."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"{uri}: {reason}; re-run bronze for the day")


class RowAccountingError(LakeError):
    """Rows read differ from rows written plus rows quarantined: something would be lost."""

    def __init__(
        self,
        what: str,
        read: int,
        written: int,
        quarantined: int,
        *,
        dataset: str | None = None,
        day: date | Period | None = None,
    ) -> None:
        self.what = what
        self.read, self.written, self.quarantined = read, written, quarantined
        self.dataset = dataset
        self.day = day
        super().__init__(
            f"{what}: rows read ({read}) != rows written ({written}) + rows quarantined "
            f"({quarantined}); nothing was committed"
        )


class TableCommitError(LakeError):
    """An Iceberg commit could not be made; the table is left as it was."""

    def __init__(self, table: str, reason: str) -> None:
        self.table = table
        self.reason = reason
        super().__init__(f"table {table}: {reason}")


class TableReadError(LakeError):
    """An Iceberg table cannot be read as asked; nothing was changed.

    `snapshot_id` and `file` are set when the problem is one snapshot or one data file.
    """

    def __init__(
        self,
        table: str,
        reason: str,
        *,
        snapshot_id: int | None = None,
        file: str | None = None,
    ) -> None:
        self.table = table
        self.reason = reason
        self.snapshot_id = snapshot_id
        self.file = file
        super().__init__(self._message())

    def _message(self) -> str:
        return f"table {self.table}: {self.reason}"


class TableNotFoundError(TableReadError):
    """The catalog has no table of this name; `known` lists the tables it has."""

    def __init__(self, table: str, known: Iterable[str] = ()) -> None:
        self.known = sorted(known)
        reason = "no such table"
        if "." not in table.strip("."):
            same = [k for k in self.known if k.rsplit(".", 1)[-1] == table]
            reason += (
                f": a table name has its namespace, e.g. {same[0] if same else 'lake.' + table}"
            )
        tables = ", ".join(self.known) if self.known else "none yet (run `make demo`)"
        super().__init__(table, f"{reason} (tables: {tables})")


class SnapshotNotFoundError(TableReadError):
    """The table has no snapshot with this id, no tag or branch of this name, or none yet at
    this time; `known` lists the table's tags and branches when a name was asked for, `span`
    the commit times of its first and last snapshot."""

    def __init__(
        self,
        table: str,
        *,
        snapshot_id: int | None = None,
        tag: str | None = None,
        as_of: datetime | None = None,
        known: Iterable[str] = (),
        span: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.tag = tag
        self.as_of = as_of
        self.known = sorted(known)
        self.span = span
        if tag is not None:
            reason = f"has no tag or branch {tag!r} (known: {', '.join(self.known) or 'none'})"
        elif as_of is not None:
            reason = f"had no snapshot at {as_of.isoformat()}"
        else:
            reason = f"has no snapshot {snapshot_id}"
        if tag is None and span is not None:
            reason += f" ({describe_span(span)})"
        super().__init__(table, reason, snapshot_id=snapshot_id)

    def _message(self) -> str:
        return f"table {self.table} {self.reason}"


def describe_span(span: tuple[datetime, datetime]) -> str:
    """When the first and the last snapshot were committed, in UTC."""
    first, last = (t.strftime("%Y-%m-%dT%H:%M:%S") for t in span)
    return f"its snapshots were committed from {first} to {last} UTC"


class SensorCursorError(LakeError):
    """A sensor's stored cursor cannot be read; the message says how to reset it."""

    def __init__(self, sensor: str, reason: str) -> None:
        self.sensor = sensor
        self.reason = reason
        super().__init__(
            f"sensor {sensor}: unreadable cursor ({reason}); reset it with "
            f"`dagster sensor cursor {sensor} --delete` (files still landed are then "
            "requested again, which re-ingests their days idempotently)"
        )
