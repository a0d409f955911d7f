"""Seeded sample data: a clickstream landed as a mix of CSV and NDJSON files, some gzipped.

Used by `make demo`, the tests and the benchmarks. `generate_events` returns the rows it landed
that are valid, so tests can compare what the lake holds with what was generated.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from lake_pipelines.datasets import events, orders
from lake_pipelines.lake.storage import ObjectStore

BROWSERS = ("chrome", "firefox", "safari", "edge")
COUNTRIES = ("DE", "US", "FR", "GB", "JP", "BR", "IN")
DOMAINS = ("shop.example.com", "blog.example.org", "docs.example.net", "example.com")
# Each day lands as these files: (suffix, gzip?)
FILE_LAYOUT = (("csv", False), ("csv", True), ("ndjson", False), ("ndjson", True))


@dataclass
class SampleDay:
    day: date
    valid: pa.Table
    files: list[str] = field(default_factory=list)
    bad_rows: int = 0
    bad_files: int = 0


def _events(rng: np.random.Generator, day: date, n: int, offset: int) -> pa.Table:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    micros = np.sort(rng.integers(0, 86_400_000_000, n))
    ts = [start + timedelta(microseconds=int(m)) for m in micros]
    users = rng.integers(0, max(n // 5, 1), n)
    kinds = rng.choice(len(events.EVENT_TYPES), n, p=[0.5, 0.25, 0.12, 0.05, 0.08])
    prices = np.round(rng.gamma(2.0, 20.0, n), 2)
    priced = np.isin(kinds, [2, 3])
    doms = rng.integers(0, len(DOMAINS), n)
    nlat = rng.integers(0, 4, n)
    rows = {
        "event_id": [f"{day:%Y%m%d}-{offset + i:08d}" for i in range(n)],
        "ts": ts,
        "user_id": [f"u{u:06d}" for u in users],
        "session_id": [
            f"s{day:%m%d}-{u:06d}-{int(m) // 1_800_000_000}"
            for u, m in zip(users, micros, strict=True)
        ],
        "event_type": [events.EVENT_TYPES[k] for k in kinds],
        "url": [f"https://{DOMAINS[d]}/p/{i % 97}" for i, d in enumerate(doms)],
        "price": [float(p) if q else None for p, q in zip(prices, priced, strict=True)],
        "properties": [
            {
                "browser": BROWSERS[int(rng.integers(0, len(BROWSERS)))],
                "country": COUNTRIES[int(rng.integers(0, len(COUNTRIES)))],
                "referrer": None if i % 3 else "https://search.example/",
            }
            for i in range(n)
        ],
        "latencies_ms": [[float(x) for x in np.round(rng.exponential(80, k), 3)] for k in nlat],
    }
    return pa.table(rows, schema=events.SCHEMA.remove_metadata())


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_csv(table: pa.Table) -> bytes:
    """CSV with a header; nested values as JSON text, timestamps as ISO-8601 UTC."""
    out = io.StringIO()
    import csv

    w = csv.writer(out, lineterminator="\n")
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow(
            [
                ""
                if v is None
                else _iso(v)
                if isinstance(v, datetime)
                else json.dumps(v)
                if isinstance(v, dict | list)
                else repr(v)
                if isinstance(v, float)
                else v
                for v in row.values()
            ]
        )
    return out.getvalue().encode()


def to_ndjson(table: pa.Table) -> bytes:
    lines = []
    for row in table.to_pylist():
        row["ts"] = _iso(row["ts"])
        lines.append(json.dumps({k: v for k, v in row.items() if v is not None}))
    return ("\n".join(lines) + "\n").encode()


def generate_events(
    store: ObjectStore,
    start: date,
    days: int = 7,
    rows_per_day: int = 2_000,
    seed: int = 42,
    bad_rows: bool = True,
) -> list[SampleDay]:
    """Land `days` days of events under ``landing/events/<day>/``; return what was landed.

    With ``bad_rows`` each day also carries a few rows that must be quarantined (unknown event
    type, unparsable price, broken JSON line), and the last day one unreadable file.
    """
    rng = np.random.default_rng(seed)
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        table = _events(rng, day, rows_per_day, 0)
        sample = SampleDay(day, table)
        bounds = np.linspace(0, rows_per_day, len(FILE_LAYOUT) + 1).astype(int)
        for i, (fmt, gz) in enumerate(FILE_LAYOUT):
            part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
            body = to_csv(part) if fmt == "csv" else to_ndjson(part)
            if bad_rows and fmt == "csv" and not gz:
                body += (
                    b"bad-1," + _iso(datetime(day.year, day.month, day.day, 1, tzinfo=UTC)).encode()
                )
                body += b",u1,s1,teleport,,,,\n"
                body += (
                    b"bad-2," + _iso(datetime(day.year, day.month, day.day, 2, tzinfo=UTC)).encode()
                )
                body += b",u1,s1,purchase,,n/a,,\n"
                sample.bad_rows += 2
            if bad_rows and fmt == "ndjson" and not gz:
                body += b'{"event_id": "bad-3", "ts": \n'
                sample.bad_rows += 1
            name = f"batch-{i:02d}.{fmt}" + (".gz" if gz else "")
            key = f"landing/events/{day.isoformat()}/{name}"
            store.write_bytes(key, gzip.compress(body, mtime=0) if gz else body)
            sample.files.append(key)
        if bad_rows and d == days - 1:
            key = f"landing/events/{day.isoformat()}/batch-99.csv.gz"
            store.write_bytes(key, gzip.compress(b"event_id,ts\nx,y\n", mtime=0)[:-12])
            sample.files.append(key)
            sample.bad_files += 1
        out.append(sample)
    return out


def _orders(rng: np.random.Generator, day: date, n: int) -> pa.Table:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    micros = np.sort(rng.integers(0, 86_400_000_000, n))
    rows = []
    for i, m in enumerate(micros):
        k = int(rng.integers(1, 4))
        items = [
            {
                "sku": f"sku-{int(rng.integers(0, 500)):04d}",
                "quantity": int(rng.integers(1, 5)),
                "unit_price": float(round(rng.gamma(2.0, 15.0), 2)),
            }
            for _ in range(k)
        ]
        total = sum(
            (Decimal(str(it["unit_price"])) * int(str(it["quantity"])) for it in items), Decimal(0)
        )
        rows.append(
            {
                "order_id": f"o{day:%Y%m%d}-{i:06d}",
                "ordered_at": start + timedelta(microseconds=int(m)),
                "customer_id": f"c{int(rng.integers(0, max(n // 3, 1))):05d}",
                "status": orders.STATUSES[int(rng.integers(0, len(orders.STATUSES)))],
                "currency": ("EUR", "USD", "GBP")[int(rng.integers(0, 3))],
                "total": total.quantize(Decimal("0.01")),
                "shipping": {
                    "country": COUNTRIES[int(rng.integers(0, len(COUNTRIES)))],
                    "city": None if i % 5 == 0 else f"city-{int(rng.integers(0, 40))}",
                    "express": bool(rng.integers(0, 2)),
                },
                "items": items,
            }
        )
    return pa.Table.from_pylist(rows, schema=orders.SCHEMA.remove_metadata())


def _order_json(row: dict, numbers_as_strings: bool) -> dict:
    out = dict(row)
    out["ordered_at"] = _iso(row["ordered_at"])
    # Some producers send decimals as strings, others as numbers: both must load.
    out["total"] = str(row["total"]) if numbers_as_strings else float(row["total"])
    return out


def generate_orders(
    store: ObjectStore,
    start: date,
    days: int = 7,
    rows_per_day: int = 500,
    seed: int = 7,
    bad_rows: bool = True,
) -> list[SampleDay]:
    """Land orders as JSON array files under ``landing/orders/<day>/`` (one gzipped)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        table = _orders(rng, day, rows_per_day)
        sample = SampleDay(day, table)
        half = rows_per_day // 2
        for i, (part, gz) in enumerate(((table.slice(0, half), False), (table.slice(half), True))):
            records = [_order_json(r, numbers_as_strings=(i == 1)) for r in part.to_pylist()]
            if bad_rows and i == 0:
                bad = _order_json(part.to_pylist()[0], False)
                records.append({**bad, "order_id": f"bad-{day}-1", "status": "lost"})
                records.append({**bad, "order_id": f"bad-{day}-2", "total": "n/a"})
                records.append(records[0])  # the same order sent twice
                sample.bad_rows += 3
            body = json.dumps(records, indent=1, default=str).encode()
            key = f"landing/orders/{day.isoformat()}/orders-{i:02d}.json" + (".gz" if gz else "")
            store.write_bytes(key, gzip.compress(body, mtime=0) if gz else body)
            sample.files.append(key)
        out.append(sample)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Land seeded sample events in the lake.")
    parser.add_argument("--store", default=".lake", help="lake URL or path (default .lake)")
    parser.add_argument("--start", default="2026-11-01", type=date.fromisoformat)
    parser.add_argument("--days", default=7, type=int)
    parser.add_argument("--rows-per-day", default=2_000, type=int)
    parser.add_argument("--seed", default=42, type=int)
    args = parser.parse_args(argv)
    store = ObjectStore(args.store)
    days = generate_events(store, args.start, args.days, args.rows_per_day, args.seed)
    order_days = generate_orders(store, args.start, args.days, max(args.rows_per_day // 4, 10))
    files = sum(len(d.files) for d in days + order_days)
    print(f"landed {files} files for {len(days)} days under {store.uri('landing')}")


if __name__ == "__main__":
    main()
