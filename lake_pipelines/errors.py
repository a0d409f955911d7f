"""The exceptions lake_pipelines raises: each names what a user has to look at.

Library errors (pyarrow, pyiceberg, fsspec, DataFusion) are caught at the boundary and re-raised
as one of these, with the file, line, setting or table in the message.
"""

from __future__ import annotations


class LakeError(Exception):
    """Base class of every error lake_pipelines raises on purpose."""


class ConfigError(LakeError):
    """A setting is missing or has a value we cannot use."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"setting {setting}={value!r}: {reason}")


class ObjectStoreError(LakeError):
    """An object store operation failed after its retries."""

    def __init__(self, url: str, action: str, cause: BaseException) -> None:
        self.url = url
        self.action = action
        super().__init__(f"{action} {url} failed: {type(cause).__name__}: {cause}")


class SourceFileError(LakeError):
    """A landed file cannot be read at all (bad encoding, truncated archive, broken JSON)."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class RowAccountingError(LakeError):
    """Rows read differ from rows written plus rows quarantined: something would be lost."""

    def __init__(self, what: str, read: int, written: int, quarantined: int) -> None:
        self.read, self.written, self.quarantined = read, written, quarantined
        super().__init__(
            f"{what}: rows read ({read}) != rows written ({written}) + rows quarantined "
            f"({quarantined}); nothing was committed"
        )


class TableCommitError(LakeError):
    """An Iceberg commit could not be made; the table is left as it was."""

    def __init__(self, table: str, reason: str) -> None:
        self.table = table
        super().__init__(f"table {table}: {reason}")
