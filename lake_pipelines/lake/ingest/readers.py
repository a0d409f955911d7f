"""Streaming readers for landed files: bytes in, Arrow batches of the spec's schema out.

Files are read in blocks of ``block_bytes`` (bounded memory whatever the file size); each block
is cut at a record boundary and parsed by pyarrow in one call. Rows that cannot be parsed or
converted become `Reject`s carrying the file, the physical line, the column and the reason; the
rest of the block goes on. Line numbers are only worked out for blocks that have rejects, so
clean input pays nothing for them.
"""

from __future__ import annotations

import codecs
import posixpath
import zlib
from collections.abc import Iterator

import pyarrow as pa

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import ObjectStoreError, SourceFileError
from lake_pipelines.lake.ingest.batches import (
    Batch,
    Reject,
    add_reason,
    nullable_schema,
    row_json,
    with_end,
)
from lake_pipelines.lake.ingest.csv_reader import read_csv
from lake_pipelines.lake.ingest.json_reader import read_json
from lake_pipelines.lake.retries import is_transient
from lake_pipelines.lake.storage import ObjectStore

COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".bz2": "bz2"}
FORMAT_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",  # NDJSON or one top-level array, told apart by the first byte
}
LANDING_SUFFIXES = tuple(f + c for f in FORMAT_SUFFIXES for c in ("", *COMPRESSION_SUFFIXES))
# A listed landing file that fails to open this way is quarantined whole, not the day failed.
UNOPENABLE = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
DEFAULT_BLOCK_BYTES = 8 << 20  # in flight: ~2 blocks parsing, 1 validating (see README)


def file_format(key: str) -> tuple[str, str | None]:
    """(format, compression) of a landed file, from its name."""
    name = posixpath.basename(key).lower()
    stem, ext = posixpath.splitext(name)
    compression = COMPRESSION_SUFFIXES.get(ext)
    if compression:
        stem, ext = posixpath.splitext(stem)
    fmt = FORMAT_SUFFIXES.get(ext)
    if fmt is None:
        raise SourceFileError(
            key, f"unknown file type {name!r}; expected one of {LANDING_SUFFIXES}"
        )
    return fmt, compression


def _blocks(store: ObjectStore, key: str, block_bytes: int) -> Iterator[bytes]:
    """Decompressed bytes of a file, block by block; decode errors name the file."""
    _, compression = file_format(key)
    try:
        raw = store.open_input(key)
    except ObjectStoreError as exc:
        if isinstance(exc.cause, UNOPENABLE):  # gone since the listing, or not a file
            raise SourceFileError(key, f"cannot be opened: {exc.cause}") from exc
        raise
    stream = pa.CompressedInputStream(raw, compression) if compression else raw
    try:
        with stream:
            while True:
                try:
                    block = stream.read(block_bytes)
                except (OSError, pa.ArrowInvalid, zlib.error, EOFError) as exc:
                    if not compression or is_transient(exc):  # the store failed, not the file
                        raise ObjectStoreError(store.uri(key), "read", exc) from exc
                    raise SourceFileError(key, f"cannot decompress ({compression}): {exc}") from exc
                if not block:
                    return
                yield block
    finally:
        raw.close()


def _to_utf8(blocks: Iterator[bytes], key: str, encoding: str) -> Iterator[bytes]:
    """Blocks of text in `encoding`, re-encoded as UTF-8 (a character split across two
    blocks is carried over); bytes that are not valid in `encoding` name their line."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    for block in with_end(blocks):
        final = block is None
        data = block if block is not None else b""
        state = decoder.getstate()  # byte order, a character cut at the block's start
        try:
            text = decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            line += _lines_before_error(encoding, state, data)
            raise SourceFileError(
                key, f"not valid {encoding} text ({exc.reason})", line=line
            ) from exc
        line += text.count("\n")
        if text:
            yield text.encode("utf-8")


def _lines_before_error(encoding: str, state: tuple[bytes, int], data: bytes) -> int:
    """Line breaks `data` decodes to before its first invalid byte, decoded from `state`
    (so a UTF-16 block without its file's byte-order mark still reads in the right order):
    pieces that decode are counted, a piece that fails is tried again in smaller ones."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    count, pos, step = 0, 0, 1 << 16
    try:
        decoder.setstate(state)
        while pos < len(data):
            before = decoder.getstate()
            try:
                count += decoder.decode(data[pos : pos + step]).count("\n")
                pos += step
            except UnicodeDecodeError:
                if step == 1:
                    break
                decoder.setstate(before)
                step = max(step // 16, 1)
    except (TypeError, ValueError):  # a codec without a usable state: count what decoded
        pass
    return count


def read_file(
    store: ObjectStore,
    key: str,
    spec: DatasetSpec,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    ahead: bool = True,
) -> Iterator[Batch]:
    """Stream a landed file as batches of `spec.schema`.

    With `ahead`, the next blocks are parsed and converted on the shared thread pool while
    the caller works (a JSON array's records on a background thread).

    Raises:
        SourceFileError: the file as a whole cannot be read (unknown type, broken compression,
            not UTF-8, no header); rows already yielded from it must be discarded.
    """
    fmt, _ = file_format(key)
    escape = store.escapes(key, spec.landing_prefix)
    if escape:
        raise SourceFileError(key, escape)
    blocks = _blocks(store, key, block_bytes)
    if fmt == "csv":
        if not spec.csv.is_utf8:
            blocks = _to_utf8(blocks, key, spec.csv.encoding)
        yield from read_csv(blocks, key, spec, parallel=ahead)
    else:
        yield from read_json(blocks, key, spec, parallel=ahead, arrays=fmt == "json")


__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "LANDING_SUFFIXES",
    "Batch",
    "Reject",
    "add_reason",
    "file_format",
    "nullable_schema",
    "read_file",
    "row_json",
]
