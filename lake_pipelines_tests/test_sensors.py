"""Landing sensors: ticks over real files (local disk and a real S3 server) and the cursor."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.sensor_definition import SensorExecutionData

from lake_pipelines.automation import daily_job
from lake_pipelines.datasets import get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.landing.cursor import LandingCursor, SensorCursorError
from lake_pipelines.lake.landing.planner import LandedFile, plan_runs
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import ObjectStoreResource
from lake_pipelines.sample_data import generate_events
from lake_pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG, build_landing_sensor
from lake_pipelines_tests.conftest import S3Server, dagster_resources, sql_catalog
from lake_pipelines_tests.support import rows

SPEC = get_dataset("events")
SENSOR = defs.resolve_sensor_def("events_landing_sensor")
# The strictest setting: no lookback at all, only the cursor's own second is re-listed.
STRICT = build_landing_sensor(SPEC, daily_job(SPEC), lookback=0)
BODY = b"event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
LocalLake = tuple[ObjectStore, ObjectStoreResource]  # the `lake` fixture


def tick(
    sensor: dg.SensorDefinition, resource: ObjectStoreResource, cursor: str | None = None
) -> SensorExecutionData:
    """One evaluation as the daemon does it (partition keys resolved against the job)."""
    context = dg.build_sensor_context(
        cursor=cursor, definitions=defs, resources={"object_store": resource}
    )
    return sensor.evaluate_tick(context)


def requested(result: SensorExecutionData) -> list[tuple[str, ...]]:
    """The days each run request covers."""
    out: list[tuple[str, ...]] = []
    for r in result.run_requests or []:
        if r.partition_key:
            out.append((r.partition_key,))
        else:
            out.append((r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]))
    return out


def land(store: ObjectStore, day: str, name: str, body: bytes = BODY) -> Path:
    store.write_bytes(f"landing/events/{day}/{name}", body)
    return Path(store.path(f"landing/events/{day}/{name}"))


@pytest.fixture
def lake(tmp_path: Path) -> LocalLake:
    store = ObjectStore(f"file://{tmp_path / 'lake'}")
    return store, ObjectStoreResource(url=store.url)


def test_new_files_request_runs_once(lake: LocalLake) -> None:
    store, resource = lake
    for day in ("2026-11-01", "2026-11-02", "2026-11-05"):
        land(store, day, "a.csv")
        land(store, day, "b.ndjson.gz", b"\x1f\x8b")
    first = tick(SENSOR, resource)
    # Consecutive days share a run; a gap starts a new one.
    assert requested(first) == [("2026-11-01", "2026-11-02"), ("2026-11-05",)]
    assert first.run_requests is not None
    assert [r.tags["lake/landed_files"] for r in first.run_requests] == ["4", "2"]
    assert first.run_requests[1].tags["dagster/partition"] == "2026-11-05"

    again = tick(SENSOR, resource, first.cursor)
    assert not again.run_requests and again.skip_message

    # Without the cursor (say it was deleted) the same files give the same run keys, which
    # Dagster launches only once per sensor.
    fresh = tick(SENSOR, resource)
    assert fresh.run_requests is not None
    assert [r.run_key for r in fresh.run_requests] == [r.run_key for r in first.run_requests]

    # A file replaced with new content is new; its day runs again under another key.
    land(store, "2026-11-02", "a.csv", BODY + b"e1,2026-11-02T00:00:00Z,u,s,click,,,,\n")
    changed = tick(SENSOR, resource, first.cursor)
    assert requested(changed) == [("2026-11-02",)]
    assert changed.run_requests is not None
    assert changed.run_requests[0].run_key not in {r.run_key for r in first.run_requests}
    assert not tick(SENSOR, resource, changed.cursor).run_requests


def test_a_file_in_the_cursor_second_is_not_lost(lake: LocalLake) -> None:
    store, resource = lake
    # Pin both files' arrival to one second after anything else on this disk: mtime is set,
    # ctime (now) is earlier, and arrival is the later of the two.
    second = int(time.time()) + 100
    os.utime(land(store, "2026-11-01", "a.csv"), (second, second))
    first = tick(STRICT, resource)
    assert requested(first) == [("2026-11-01",)]
    assert LandingCursor.parse(first.cursor, "t").high_water == second

    os.utime(land(store, "2026-11-03", "b.csv"), (second, second))
    late = tick(STRICT, resource, first.cursor)
    assert requested(late) == [("2026-11-03",)]
    assert late.run_requests is not None
    assert late.run_requests[0].tags["lake/landed_files"] == "1"
    assert not tick(STRICT, resource, late.cursor).run_requests


def test_partial_and_temporary_files_wait_until_complete(lake: LocalLake) -> None:
    store, resource = lake
    day = "2026-11-04"
    land(store, day, "a.csv.inprogress")
    land(store, day, ".b.csv.tmp")
    land(store, day, "_tmp/c.csv")
    land(store, day, "_SUCCESS", b"")
    land(store, day, "d.csv", b"")  # created, not yet written
    waiting = tick(STRICT, resource)
    assert not waiting.run_requests

    base = Path(store.path(f"landing/events/{day}"))
    (base / "a.csv.inprogress").rename(base / "a.csv")  # the writer finished and renamed
    (base / "d.csv").write_bytes(BODY)
    done = tick(STRICT, resource, waiting.cursor)
    assert requested(done) == [(day,)]
    assert done.run_requests is not None
    assert done.run_requests[0].tags["lake/landed_files"] == "2"
    assert not tick(STRICT, resource, done.cursor).run_requests


def test_files_of_today_wait_for_the_partition(lake: LocalLake) -> None:
    store, resource = lake
    today = datetime.now(UTC).date().isoformat()
    land(store, today, "a.csv")
    land(store, "2025-12-31", "before-the-first-partition.csv")
    result = tick(SENSOR, resource)
    assert not result.run_requests
    cursor = LandingCursor.parse(result.cursor, "t")
    assert list(cursor.deferred) == [today] and len(cursor.deferred[today]) == 1

    # Once the day's partition exists the waiting file is requested, and only once.
    f = LandedFile("landing/events/2026-11-06/x.csv", 10, "v", arrival=cursor.high_water)
    plan = plan_runs(
        [f], cursor, landing_prefix=SPEC.landing_prefix, first_day="2026-01-01", last_day=today
    )
    assert [b.days for b in plan.batches] == [("2026-11-06",), (today,)]
    assert not plan.cursor.deferred


def test_unreadable_cursor_says_how_to_reset_it(lake: LocalLake) -> None:
    _, resource = lake
    with pytest.raises(Exception, match="dagster sensor cursor events_landing_sensor --delete"):
        tick(SENSOR, resource, "not json")
    with pytest.raises(SensorCursorError, match="version"):
        LandingCursor.parse('{"v": 99}', "s")


def test_the_sensor_run_carries_landed_days_to_gold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    for var in ("LAKE_STORE_URL", "LAKE_CATALOG_URI", "LAKE_WAREHOUSE", "LAKE_CATALOG_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKE_HOME", str(lake))
    store = ObjectStore(str(lake))
    days = generate_events(store, date(2026, 11, 1), days=2, rows_per_day=300, seed=8)
    result = tick(SENSOR, ObjectStoreResource())
    assert requested(result) == [("2026-11-01", "2026-11-02")]
    assert result.run_requests is not None
    with dg.instance_for_test() as instance:
        run = defs.resolve_job_def("events_daily").execute_in_process(
            instance=instance,
            tags=result.run_requests[0].tags,
            asset_selection=[  # the layers of one day; other gold assets have their own tests
                dg.AssetKey(["lake", "bronze", "events"]),
                dg.AssetKey(["lake", "silver", "events"]),
                dg.AssetKey(["lake", "gold", "events_daily_metrics"]),
            ],
        )
        assert run.success
        assert run.dagster_run.tags[RANGE_START_TAG] == "2026-11-01"
    catalog = sql_catalog(store, lake / "catalog.db")
    silver = catalog.load_table(SPEC.table_name).scan().to_arrow()
    expected = sorted([r for d in days for r in rows(d.valid)], key=lambda r: r["event_id"])
    assert rows(silver, columns=list(SPEC.schema.names)) == expected
    gold = catalog.load_table(metrics_table_name(SPEC)).scan().to_arrow().to_pylist()
    for d in days:
        assert sum(r["events"] for r in gold if r["day"] == d.day) == d.valid.num_rows


# -- S3, against a real S3-compatible server --------------------------------------------------


def _put(server: S3Server, store: ObjectStore, day: str, name: str, body: bytes = BODY) -> int:
    """Upload a landing file; return its LastModified second as the server stamped it."""
    key = f"{store.root.split('/', 1)[1]}/landing/events/{day}/{name}"
    client = server.client()
    client.put_object(Bucket=store.bucket, Key=key, Body=body)
    return int(client.head_object(Bucket=store.bucket, Key=key)["LastModified"].timestamp())


def _next_second() -> None:
    time.sleep(1 - time.time() % 1 + 0.01)


def test_s3_file_in_the_cursor_second_is_not_lost(
    s3_env: S3Server, s3_store: ObjectStore, tmp_path: Path
) -> None:
    resource = dagster_resources(s3_store, tmp_path / "c.db")["object_store"]
    cursor = None
    same_second = False
    for attempt in range(5):  # retried only if the host is too slow to stay in one second
        _next_second()
        _put(s3_env, s3_store, f"2026-10-{2 * attempt + 1:02d}", "a.csv")
        first = tick(STRICT, resource, cursor)
        assert requested(first) == [(f"2026-10-{2 * attempt + 1:02d}",)]
        high_water = LandingCursor.parse(first.cursor, "t").high_water
        written = _put(s3_env, s3_store, f"2026-10-{2 * attempt + 2:02d}", "b.csv")
        late = tick(STRICT, resource, first.cursor)
        assert requested(late) == [(f"2026-10-{2 * attempt + 2:02d}",)]
        assert not tick(STRICT, resource, late.cursor).run_requests
        cursor = late.cursor
        if written == high_water:
            same_second = True
            break
    assert same_second, "no attempt wrote the second file in the cursor's second"


def test_s3_partial_uploads_wait_until_complete(
    s3_env: S3Server, s3_store: ObjectStore, tmp_path: Path
) -> None:
    resource = dagster_resources(s3_store, tmp_path / "c.db")["object_store"]
    client = s3_env.client()
    key = f"{s3_store.root.split('/', 1)[1]}/landing/events/2026-11-03/big.csv"
    upload = client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)
    part = client.upload_part(
        Bucket=s3_store.bucket, Key=key, PartNumber=1, UploadId=upload["UploadId"], Body=BODY
    )
    _put(s3_env, s3_store, "2026-11-03", "_SUCCESS", b"")
    _put(s3_env, s3_store, "2026-11-03", "empty.csv", b"")
    _next_second()
    _put(s3_env, s3_store, "2026-11-01", "other.csv")
    first = tick(SENSOR, resource)
    assert requested(first) == [("2026-11-01",)]  # the upload is not visible yet

    client.complete_multipart_upload(
        Bucket=s3_store.bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    done = tick(SENSOR, resource, first.cursor)
    assert requested(done) == [("2026-11-03",)]
    assert done.run_requests is not None
    assert done.run_requests[0].tags["lake/landed_files"] == "1"
    assert not tick(SENSOR, resource, done.cursor).run_requests
