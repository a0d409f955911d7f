"""Vectorised `events` rows at benchmark scale: typed Arrow, CSV text and NDJSON text.

`lake_pipelines.sample_data` builds rows one Python object at a time, which is right for a few
thousand demo rows and far too slow for millions. This module builds the same shape of data
(same schema, same value distributions, same CSV/NDJSON conventions: header row, nested cells
as JSON text, ISO-8601 UTC timestamps with ``Z``) with numpy and pyarrow compute only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from lake_pipelines.datasets import events
from lake_pipelines.sample_data import BROWSERS, COUNTRIES, DOMAINS

CHUNK_ROWS = 500_000
_KIND_P = [0.5, 0.25, 0.12, 0.05, 0.08]
_REFERRER = "https://search.example/"
_DAY_US = 86_400_000_000


class Chunk:
    """The raw components of `n` consecutive rows of one day (row numbers from `offset`)."""

    def __init__(
        self, rng: np.random.Generator, day: date, n: int, offset: int, day_rows: int
    ) -> None:
        start_us = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**6
        # Rows of a day arrive in time order: chunk k covers the k-th slice of the day.
        lo = offset * _DAY_US // day_rows
        hi = (offset + n) * _DAY_US // day_rows
        self.day, self.n, self.offset = day, n, offset
        self.micros = np.sort(rng.integers(lo, max(hi, lo + 1), n))
        self.ts_us = start_us + self.micros
        self.users = rng.integers(0, max(day_rows // 5, 1), n)
        self.kinds = rng.choice(len(events.EVENT_TYPES), n, p=_KIND_P)
        self.prices = np.round(rng.gamma(2.0, 20.0, n), 2)
        self.priced = np.isin(self.kinds, [2, 3])
        self.domains = rng.integers(0, len(DOMAINS), n)
        self.browsers = rng.integers(0, len(BROWSERS), n)
        self.countries = rng.integers(0, len(COUNTRIES), n)
        self.has_referrer = (np.arange(offset, offset + n) % 3) == 0
        self.nlat = rng.integers(0, 4, n)
        self.latencies = np.round(rng.exponential(80, (n, 3)), 3)

    # -- typed columns ------------------------------------------------------------------

    def _digits(self, values: np.ndarray, width: int) -> pa.Array:
        return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width, "0")

    def event_id(self) -> pa.Array:
        rows = np.arange(self.offset, self.offset + self.n)
        return pc.binary_join_element_wise(f"{self.day:%Y%m%d}-", self._digits(rows, 8), "")

    def ts(self) -> pa.Array:
        return pa.array(self.ts_us, pa.timestamp("us", tz="UTC"))

    def user_id(self) -> pa.Array:
        return pc.binary_join_element_wise("u", self._digits(self.users, 7), "")

    def session_id(self) -> pa.Array:
        half_hours = pc.cast(pa.array(self.micros // 1_800_000_000), pa.string())
        return pc.binary_join_element_wise(
            f"s{self.day:%m%d}-", self._digits(self.users, 7), "-", half_hours, ""
        )

    def event_type(self) -> pa.Array:
        return pa.array(np.array(events.EVENT_TYPES, dtype=object)[self.kinds], pa.string())

    def url(self) -> pa.Array:
        doms = pa.array(np.array(DOMAINS, dtype=object)[self.domains], pa.string())
        page = pc.cast(pa.array(np.arange(self.offset, self.offset + self.n) % 97), pa.string())
        return pc.binary_join_element_wise("https://", doms, "/p/", page, "")

    def price(self) -> pa.Array:
        return pa.array(self.prices, pa.float64(), mask=~self.priced)

    def _browser(self) -> pa.Array:
        return pa.array(np.array(BROWSERS, dtype=object)[self.browsers], pa.string())

    def _country(self) -> pa.Array:
        return pa.array(np.array(COUNTRIES, dtype=object)[self.countries], pa.string())

    def _referrer(self) -> pa.Array:
        return pa.array([_REFERRER, None], pa.string()).take(
            pa.array(np.where(self.has_referrer, 0, 1))
        )

    def properties(self) -> pa.Array:
        return pa.StructArray.from_arrays(
            [self._browser(), self._country(), self._referrer()],
            fields=list(events.SCHEMA.field("properties").type),
        )

    def latencies_ms(self) -> pa.Array:
        offsets = np.concatenate([[0], np.cumsum(self.nlat)]).astype(np.int32)
        take = np.arange(3)[None, :] < self.nlat[:, None]
        values = pa.array(self.latencies[take], pa.float64())
        return pa.ListArray.from_arrays(pa.array(offsets), values)

    def typed(self) -> pa.Table:
        """The rows in the dataset's own schema (what bronze should hold)."""
        return pa.table(
            [
                self.event_id(),
                self.ts(),
                self.user_id(),
                self.session_id(),
                self.event_type(),
                self.url(),
                self.price(),
                self.properties(),
                self.latencies_ms(),
            ],
            schema=events.SCHEMA.remove_metadata(),
        )

    # -- text forms ---------------------------------------------------------------------

    def ts_text(self) -> pa.Array:
        return pc.strftime(self.ts(), format="%Y-%m-%dT%H:%M:%SZ")

    def properties_json(self) -> pa.Array:
        ref = pc.if_else(pa.array(self.has_referrer), f'"{_REFERRER}"', "null")
        return pc.binary_join_element_wise(
            '{"browser": "',
            self._browser(),
            '", "country": "',
            self._country(),
            '", "referrer": ',
            ref,
            "}",
            "",
        )

    def latencies_json(self) -> pa.Array:
        text = [pc.cast(pa.array(self.latencies[:, j]), pa.string()) for j in range(3)]
        one = pc.binary_join_element_wise("[", text[0], "]", "")
        two = pc.binary_join_element_wise("[", text[0], ", ", text[1], "]", "")
        three = pc.binary_join_element_wise("[", text[0], ", ", text[1], ", ", text[2], "]", "")
        nlat = pa.array(self.nlat)
        out = pc.if_else(pc.equal(nlat, 2), two, three)
        out = pc.if_else(pc.equal(nlat, 1), one, out)
        return pc.if_else(pc.equal(nlat, 0), "[]", out)

    def csv_table(self) -> pa.Table:
        """The rows as CSV cells: nested values as JSON text, timestamps ISO-8601 with Z."""
        return pa.table(
            {
                "event_id": self.event_id(),
                "ts": self.ts_text(),
                "user_id": self.user_id(),
                "session_id": self.session_id(),
                "event_type": self.event_type(),
                "url": self.url(),
                "price": self.price(),
                "properties": self.properties_json(),
                "latencies_ms": self.latencies_json(),
            }
        )

    def ndjson_lines(self) -> pa.Array:
        """One JSON object per row, each ending in a newline."""
        price = pc.fill_null(pc.cast(self.price(), pa.string()), "null")
        return pc.binary_join_element_wise(
            '{"event_id": "',
            self.event_id(),
            '", "ts": "',
            self.ts_text(),
            '", "user_id": "',
            self.user_id(),
            '", "session_id": "',
            self.session_id(),
            '", "event_type": "',
            self.event_type(),
            '", "url": "',
            self.url(),
            '", "price": ',
            price,
            ', "properties": ',
            self.properties_json(),
            ', "latencies_ms": ',
            self.latencies_json(),
            "}\n",
            "",
        )


def chunks(
    seed: int, day: date, rows: int, chunk_rows: int = CHUNK_ROWS, part: tuple[int, int] = (0, 1)
):  # -> Iterator[Chunk]
    """The rows of one day in time order, `chunk_rows` at a time; seeded per day and chunk.

    `part` ``(i, n)``: only the i-th of n consecutive slices of the day (the day's file i of
    n, as an exporter writing a file per hour would land it); event ids stay unique per day.
    """
    i, n = part
    lo, hi = rows * i // n, rows * (i + 1) // n
    for k, offset in enumerate(range(lo, hi, chunk_rows)):
        key = [seed, day.toordinal(), k] if n == 1 else [seed, day.toordinal(), i, n, k]
        rng = np.random.default_rng(key)
        yield Chunk(rng, day, min(chunk_rows, hi - offset), offset, rows)


def write_csv(path: Path, seed: int, day: date, rows: int, part: tuple[int, int] = (0, 1)) -> None:
    """One day of events (or its slice `part`, see `chunks`) as one CSV file (header row,
    strings quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer: pcsv.CSVWriter | None = None
    try:
        for chunk in chunks(seed, day, rows, part=part):
            table = chunk.csv_table()
            if writer is None:
                writer = pcsv.CSVWriter(str(tmp), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def write_ndjson(
    path: Path, seed: int, day: date, rows: int, part: tuple[int, int] = (0, 1)
) -> None:
    """One day of events (or its slice `part`) as one NDJSON file (one object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        for chunk in chunks(seed, day, rows, part=part):
            lines = chunk.ndjson_lines()
            # The values buffer of a fresh string array is every line back to back.
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
            start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
            out.write(memoryview(lines.buffers()[2])[start:end])
    tmp.replace(path)


def write_small_parquet(directory: Path, seed: int, day: date, files: int, rows: int) -> None:
    """`files` small Parquet files of `rows` rows each (ZSTD), as bronze would hold them."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for chunk in chunks(seed, day, files * rows, chunk_rows=max(rows, CHUNK_ROWS // rows * rows)):
        table = chunk.typed()
        for lo in range(0, table.num_rows, rows):
            pq.write_table(
                table.slice(lo, rows), directory / f"part-{n:05d}.parquet", compression="zstd"
            )
            n += 1
