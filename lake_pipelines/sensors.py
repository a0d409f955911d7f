"""Landing sensors: newly landed files of a dataset → runs of its daily job, nothing twice.

A file is *new* when its id (store key + ETag or mtime + size) has not been handled before.
Arrival time is S3 ``LastModified`` (one-second precision), or on local disk the later of mtime
and ctime (a file renamed into place keeps its mtime but gets a new ctime).

The cursor holds a high-water second H, the ids of handled files that arrived within the
lookback (10 minutes) before H, and the ids of files waiting for their day's partition.
Each tick lists arrivals >= H - lookback (on S3: ``get_objects(since_last_modified=...)``,
which is strict, hence one second less) and drops the remembered ids. So a file written in
the same second as H is found, and so is an upload that became visible late but is stamped
with its start time (S3 multipart uploads are), as long as it shows within the lookback.

The pure part (ids, cursor, plan) knows nothing of Dagster; the sensor wires it to the store.
"""
# No `from __future__ import annotations`: Dagster reads the real annotations of the sensor
# function to inject the context and resources.

import hashlib
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

from lake_pipelines.assets.common import partitions_for
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import LakeError
from lake_pipelines.lake.readers import LANDING_SUFFIXES
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import ObjectStoreResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

    from lake_pipelines.resources.s3_listing import LandingS3Resource

LOOKBACK_SECONDS = 600
MAX_FILES_PER_RUN = 500
CURSOR_VERSION = 1
# The run tags `dagster asset materialize --partition-range A...B` and the UI's single-run
# backfills set: the run materializes every day from A to B at once.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class SensorCursorError(LakeError):
    """A sensor's stored cursor cannot be read; the message says how to reset it."""

    def __init__(self, sensor: str, reason: str) -> None:
        self.sensor = sensor
        super().__init__(
            f"sensor {sensor}: unreadable cursor ({reason}); reset it with "
            f"`dagster sensor cursor {sensor} --delete` (files still landed are then "
            "requested again, which re-ingests their days idempotently)"
        )


@dataclass(frozen=True)
class LandedFile:
    """One object under a landing prefix, as a listing reports it."""

    key: str  # store-relative
    size: int
    version: str  # ETag, or the local mtime
    arrival: int  # epoch second at which the object became visible

    @property
    def file_id(self) -> str:
        raw = f"{self.key}\0{self.version}\0{self.size}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class LandingCursor:
    """Where a landing sensor is: see the module docstring."""

    high_water: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # file id -> arrival second
    deferred: dict[str, list[str]] = field(default_factory=dict)  # day -> file ids

    def floor(self, lookback: int) -> int | None:
        """The earliest arrival second a listing must still return; None: list everything."""
        return self.high_water - lookback if self.high_water else None

    @classmethod
    def parse(cls, text: str | None, sensor: str) -> "LandingCursor":
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            if raw.get("v") != CURSOR_VERSION:
                raise SensorCursorError(sensor, f"version {raw.get('v')!r}")
            return cls(
                high_water=int(raw["hw"]),
                seen={str(k): int(v) for k, v in raw["seen"].items()},
                deferred={str(d): [str(i) for i in ids] for d, ids in raw["deferred"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SensorCursorError(sensor, f"{type(exc).__name__}: {exc}") from exc

    def dump(self) -> str:
        raw = {"v": CURSOR_VERSION, "hw": self.high_water, "seen": self.seen}
        raw["deferred"] = self.deferred
        return json.dumps(raw, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class RunBatch:
    """Consecutive days requested in one run, and the ids of the files that triggered it."""

    days: tuple[str, ...]
    file_ids: tuple[str, ...]

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(self.file_ids)).encode()).hexdigest()[:16]
        span = self.days[0] if len(self.days) == 1 else f"{self.days[0]}...{self.days[-1]}"
        return f"{span}:{digest}"


@dataclass
class LandingPlan:
    batches: list[RunBatch]
    cursor: LandingCursor
    waiting: dict[str, int]  # day whose partition does not exist yet -> files waiting
    incomplete: list[tuple[str, str]]  # (key, reason): looked at again once complete
    skipped: list[str]  # keys outside the dataset's days: never taken


def day_of(key: str, landing_prefix: str) -> str | None:
    """The ``YYYY-MM-DD`` directory right under the landing prefix, if the key has one."""
    rest = key[len(landing_prefix) + 1 :] if key.startswith(landing_prefix + "/") else ""
    head = rest.split("/", 1)[0]
    try:
        return head if date.fromisoformat(head).isoformat() == head else None
    except ValueError:
        return None


def incomplete_reason(key: str, size: int, landing_prefix: str) -> str | None:
    """Why a file must wait (still being written, a marker, not data), or None if whole."""
    rest = key[len(landing_prefix) + 1 :]
    if any(part.startswith((".", "_")) for part in rest.split("/")):
        return "hidden or temporary name"  # .x.tmp, _tmp/, _temporary/, _SUCCESS
    if not posixpath.basename(key).endswith(LANDING_SUFFIXES):
        return "not a landing file type"  # x.csv.inprogress, x.csv.part, x.csv._COPYING_
    if size == 0:
        return "empty (zero bytes)"
    return None


def plan_runs(
    files: Iterable[LandedFile],
    cursor: LandingCursor,
    *,
    landing_prefix: str,
    first_day: str | None,
    last_day: str | None,
    lookback: int = LOOKBACK_SECONDS,
    max_files_per_run: int = MAX_FILES_PER_RUN,
) -> LandingPlan:
    """Which runs to request for a listing, and the cursor after them.

    Args:
        files: the listing (at least every file arriving at or after ``cursor.floor``).
        first_day / last_day: the first and last daily partition that exist now; files of
            later days wait in the cursor, files of earlier days are skipped for good.
        lookback: seconds before the high-water second a file may still show up.
        max_files_per_run: consecutive days share one run up to this many new files (a day
            is never split: its run reads every file of the day anyway).
    """
    floor = cursor.floor(lookback)
    seen = dict(cursor.seen)
    deferred = {d: list(ids) for d, ids in cursor.deferred.items()}
    new: dict[str, list[str]] = {}
    incomplete: list[tuple[str, str]] = []
    skipped: list[str] = []
    high_water = cursor.high_water
    for f in sorted(files, key=lambda f: (f.arrival, f.key)):
        if (floor is not None and f.arrival < floor) or f.file_id in seen:
            continue
        reason = incomplete_reason(f.key, f.size, landing_prefix)
        if reason:
            incomplete.append((f.key, reason))  # not remembered: looked at again next tick
            continue
        seen[f.file_id] = f.arrival
        high_water = max(high_water, f.arrival)
        day = day_of(f.key, landing_prefix)
        if day is None or first_day is None or day < first_day:
            skipped.append(f.key)
        elif last_day is None or day > last_day:
            deferred.setdefault(day, []).append(f.file_id)
        else:
            new.setdefault(day, []).append(f.file_id)
    for day in [d for d in deferred if last_day is not None and d <= last_day]:
        new.setdefault(day, []).extend(deferred.pop(day))
    out = LandingCursor(
        high_water=high_water,
        seen={i: a for i, a in seen.items() if a >= high_water - lookback},
        deferred=deferred,
    )
    waiting = {d: len(ids) for d, ids in sorted(deferred.items())}
    return LandingPlan(_batches(new, max_files_per_run), out, waiting, incomplete, skipped)


def _batches(new: dict[str, list[str]], max_files: int) -> list[RunBatch]:
    batches: list[RunBatch] = []
    days: list[str] = []
    ids: list[str] = []
    for day in sorted(new):
        follows = bool(days) and date.fromisoformat(day) - date.fromisoformat(days[-1]) == (
            timedelta(days=1)
        )
        if days and (not follows or len(ids) + len(new[day]) > max_files):
            batches.append(RunBatch(tuple(days), tuple(ids)))
            days, ids = [], []
        days.append(day)
        ids.extend(new[day])
    if days:
        batches.append(RunBatch(tuple(days), tuple(ids)))
    return batches


# -- listings ------------------------------------------------------------------------------


def s3_resource_for(store: ObjectStore) -> "LandingS3Resource":
    """An S3Resource configured from the same settings as the lake's object store."""
    # dagster_aws costs ~2 s to import: only S3 listings pay for it, not every code load
    from lake_pipelines.resources.s3_listing import LandingS3Resource

    return LandingS3Resource(
        endpoint_url=store.endpoint_url or None,
        region_name=store.region or None,
        use_ssl=not store.endpoint_url.startswith("http://"),
        max_attempts=store.max_attempts,
        aws_access_key_id=store.access_key_id or None,
        aws_secret_access_key=store.secret_access_key or None,
        aws_session_token=store.session_token or None,
        addressing_style=store.addressing_style,
    )


def list_landed(store: ObjectStore, prefix: str, floor: int | None) -> list[LandedFile]:
    """Files under a store-relative prefix arriving at or after ``floor`` (None: all)."""
    if store.scheme == "s3":
        return _list_s3(store, prefix, floor)
    try:
        found = store.fs.find(store.path(prefix), detail=True, withdirs=False)
    except FileNotFoundError:
        return []
    out = []
    for path, info in found.items():
        if info.get("type") == "directory":
            continue
        mtime = _epoch(info.get("mtime") or info.get("LastModified") or info.get("updated"))
        # ctime: a finished file renamed into place keeps its mtime but gets a new ctime.
        arrival = int(max(mtime, _epoch(info.get("created")) if store.scheme == "file" else 0))
        etag = info.get("ETag") or info.get("etag")
        version = str(etag).strip('"') if etag else repr(mtime)
        f = LandedFile(store.key_of(path), int(info.get("size") or 0), version, arrival)
        if floor is None or f.arrival >= floor:
            out.append(f)
    return out


def _list_s3(store: ObjectStore, prefix: str, floor: int | None) -> list[LandedFile]:
    bucket, _, root = store.root.partition("/")
    key_prefix = posixpath.join(root, prefix.strip("/")) + "/" if root else prefix.strip("/") + "/"
    # get_objects keeps LastModified > since; LastModified has whole seconds.
    since = datetime.fromtimestamp(floor - 1, tz=UTC) if floor is not None else None
    from dagster_aws.s3.sensor import get_objects

    objects = get_objects(
        bucket,
        prefix=key_prefix,
        since_last_modified=since,
        client=s3_resource_for(store).get_client(),
    )
    return [
        LandedFile(
            key=store.key_of(f"{bucket}/{o['Key']}"),
            size=int(o.get("Size") or 0),
            version=str(o.get("ETag", "")).strip('"'),
            arrival=int(o["LastModified"].timestamp()),
        )
        for o in objects
    ]


def _epoch(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


# -- the Dagster sensor --------------------------------------------------------------------


def run_request(spec: DatasetSpec, batch: RunBatch) -> dg.RunRequest:
    tags = {"lake/dataset": spec.name, "lake/landed_files": str(len(batch.file_ids))}
    if len(batch.days) == 1:
        return dg.RunRequest(run_key=batch.run_key, partition_key=batch.days[0], tags=tags)
    # Several days in one run: the assets' BackfillPolicy.single_run() reads the range.
    tags[RANGE_START_TAG] = batch.days[0]
    tags[RANGE_END_TAG] = batch.days[-1]
    return dg.RunRequest(run_key=batch.run_key, tags=tags)


def build_landing_sensor(
    spec: DatasetSpec,
    job: "UnresolvedAssetJobDefinition",
    *,
    lookback: int = LOOKBACK_SECONDS,
    max_files_per_run: int = MAX_FILES_PER_RUN,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The dataset's landing sensor: new files of a day → a run of ``job`` for that day."""
    name = f"{spec.name}_landing_sensor"
    partitions = partitions_for(spec)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Watches `{spec.landing_prefix}/<day>/` and runs `{job.name}` for each day with "
            f"new or changed files (consecutive days together, up to {max_files_per_run} new "
            "files per run). Temporary, hidden and empty files wait until they are complete; "
            "files of today wait until today's partition exists."
        ),
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, object_store: ObjectStoreResource
    ) -> dg.SensorResult:
        store = object_store.get_store()
        cursor = LandingCursor.parse(context.cursor, name)
        files = list_landed(store, spec.landing_prefix, cursor.floor(lookback))
        plan = plan_runs(
            files,
            cursor,
            landing_prefix=spec.landing_prefix,
            first_day=partitions.get_first_partition_key(),
            last_day=partitions.get_last_partition_key(),
            lookback=lookback,
            max_files_per_run=max_files_per_run,
        )
        for key, reason in plan.incomplete:
            context.log.debug(f"waiting until complete: {store.uri(key)}: {reason}")
        for key in plan.skipped:
            context.log.warning(f"ignored: {store.uri(key)} is not under a day of {spec.name}")
        for day, count in plan.waiting.items():
            context.log.info(f"{count} files of {day} wait until that partition exists")
        requests = [run_request(spec, b) for b in plan.batches]
        if not requests:
            return dg.SensorResult(skip_reason="no new landed files", cursor=plan.cursor.dump())
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor.dump())

    return landing_sensor
