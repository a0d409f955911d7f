"""The distributed profile's pieces that need no cluster: the profile switch, the reachability
checks, the PostgreSQL instance file on a real server, and the Kubernetes files.

What cannot be checked here, and is not: building the image (no container engine on this
machine), rendering the Helm chart (no `helm`, and the chart is not vendored), and
`kubectl apply --dry-run=client`, which needs an API server to discover the kinds. The values
are checked against the parts of the chart's values schema they set (transcribed below from
the chart of dagster 1.13), and every file against the code it names.
"""

from __future__ import annotations

import re
import socket
import tomllib
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
import yaml

from lake_pipelines.config import SECRETS, DeploySettings, variables
from lake_pipelines.errors import ConfigError
from lake_pipelines.preflight import address, check_all, check_reachable, redact
from lake_pipelines_tests.support import materialize_cli

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_the_embedded_profile_is_the_default() -> None:
    settings = DeploySettings.from_env({})
    assert (settings.executor, settings.distributed) == ("in_process", False)
    defs = __import__("lake_pipelines.definitions", fromlist=["defs"]).defs
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def is dg.in_process_executor
    silver = defs.resolve_assets_def(dg.AssetKey(["lake", "silver", "events"]))
    assert silver.backfill_policy == dg.BackfillPolicy.single_run()
    assert silver.op.pool == "iceberg_lake_events"


def test_the_distributed_profile_spreads_backfills_and_pools_no_layer_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lake_pipelines.definitions import build_definitions
    from lake_pipelines.deployment import lake_celery_executor

    monkeypatch.setenv("LAKE_EXECUTOR", "celery")
    monkeypatch.setenv("LAKE_BACKFILL_DAYS_PER_RUN", "3")
    defs = build_definitions()
    for job_name in ("events_daily", "orders_daily"):
        assert defs.resolve_job_def(job_name).executor_def is lake_celery_executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def is lake_celery_executor
    for layer in ("bronze", "silver", "gold"):
        for key in defs.resolve_all_asset_keys():
            if key.path[1] != layer:
                continue
            asset = defs.resolve_assets_def(key)
            assert asset.backfill_policy == dg.BackfillPolicy.multi_run(3), key
            assert asset.op.pool is None, key
    compaction = defs.resolve_assets_def(
        dg.AssetKey(["lake", "maintenance", "events_silver_compaction"])
    )
    assert compaction.op.pool == "iceberg_lake_events"


def _silver_days_of_gold_day(defs: dg.Definitions, day: str) -> list[str]:
    """The silver days Dagster's backfill daemon waits for before it launches the 7-day gold
    asset's `day`: those its partition mapping names."""
    gold = defs.resolve_assets_def(dg.AssetKey(["lake", "gold", "events_active_users_7d"]))
    silver = dg.AssetKey(["lake", "silver", "events"])
    partitions = gold.partitions_def
    assert partitions is not None
    graph = defs.resolve_asset_graph()
    mapping = graph.get_partition_mapping(gold.key, silver)
    mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.empty_subset().with_partition_keys([day]), partitions, partitions
    )
    return sorted(mapped.partitions_subset.get_partition_keys())


def test_the_7_day_asset_depends_on_its_window_only_where_backfills_are_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Distributed, a backfill is runs of a few days side by side: the 7-day asset's day D
    must wait for silver D-6..D (the cluster test caught a day computed next to the run
    writing silver D-1). Embedded, a range is one run and the asset depends on day D only."""
    from lake_pipelines.datasets.events import SPEC
    from lake_pipelines.definitions import build_definitions

    embedded = build_definitions()
    assert _silver_days_of_gold_day(embedded, "2026-01-10") == ["2026-01-10"]
    monkeypatch.setenv("LAKE_EXECUTOR", "celery")
    distributed = build_definitions()
    assert _silver_days_of_gold_day(distributed, "2026-01-10") == [
        f"2026-01-{d:02d}" for d in range(4, 11)
    ]
    # the dataset's first days have shorter windows, not an error
    first = date.fromisoformat(SPEC.start_date)
    assert _silver_days_of_gold_day(distributed, (first + timedelta(days=1)).isoformat()) == [
        first.isoformat(),
        (first + timedelta(days=1)).isoformat(),
    ]
    for name in ("events_daily_metrics", "events_top_domains"):
        gold = distributed.resolve_assets_def(dg.AssetKey(["lake", "gold", name]))
        mapping = distributed.resolve_asset_graph().get_partition_mapping(
            gold.key, dg.AssetKey(["lake", "silver", "events"])
        )
        assert not isinstance(mapping, dg.TimeWindowPartitionMapping) or (
            mapping.start_offset,
            mapping.end_offset,
        ) == (0, 0)


def test_a_bad_profile_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="LAKE_EXECUTOR"):
        DeploySettings.from_env({"LAKE_EXECUTOR": "dask"})


def test_celery_settings_ack_late_and_requeue_a_lost_step() -> None:
    config = DeploySettings.from_env(
        {"LAKE_CELERY_BROKER_URL": "redis://b:1/0", "LAKE_CELERY_VISIBILITY_TIMEOUT": "600"}
    ).celery_config()
    assert (config["broker"], config["backend"]) == ("redis://b:1/0", "redis://b:1/0")
    source = config["config_source"]
    assert source["task_acks_late"] and source["task_reject_on_worker_lost"]
    assert source["broker_transport_options"]["visibility_timeout"] == 600


def test_an_unreachable_broker_names_the_setting_and_the_address() -> None:
    port = closed_port()
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    with pytest.raises(ConfigError) as caught:
        check_reachable("LAKE_CELERY_BROKER_URL", url, timeout=1)
    assert caught.value.setting == "LAKE_CELERY_BROKER_URL"
    assert f"cannot reach 127.0.0.1:{port}" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_preflight_checks_each_service_the_settings_name() -> None:
    port = closed_port()
    env = {
        "LAKE_EXECUTOR": "in_process",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(port),
    }
    with pytest.raises(ConfigError, match=f"DAGSTER_PG_HOST.*127.0.0.1:{port}"):
        check_all(env)
    env = {"LAKE_CATALOG_URI": f"postgresql+psycopg2://u:pw@127.0.0.1:{port}/iceberg"}
    with pytest.raises(ConfigError, match=f"LAKE_CATALOG_URI.*u:\\*\\*\\*@127.0.0.1:{port}"):
        check_all(env)
    assert address("sqlite:////tmp/catalog.db") is None
    assert address("redis://h/0") == ("h", 6379)
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"


def test_a_run_whose_broker_is_unreachable_fails_at_start_naming_it(tmp_path: Path) -> None:
    port = closed_port()
    done = materialize_cli(
        ["--select", "lake/bronze/events", "--partition", "2026-11-01"],
        lake=tmp_path / "lake",
        home=tmp_path / "home",
        extra_env={
            "LAKE_EXECUTOR": "celery",
            "LAKE_CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        },
    )
    assert done.returncode != 0
    assert f"LAKE_CELERY_BROKER_URL='redis://127.0.0.1:{port}/0'" in done.stderr
    assert f"cannot reach 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "lake" / "bronze").exists()


def test_the_celery_instance_file_loads_on_postgresql(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator

    m = re.match(r"postgresql\+psycopg2://(\w+)@([\d.]+):(\d+)/", postgres_url)
    assert m is not None
    for var, value in zip(("USERNAME", "HOST", "PORT"), m.groups(), strict=True):
        monkeypatch.setenv(f"DAGSTER_PG_{var}", value)
    monkeypatch.setenv("DAGSTER_PG_DB", "iceberg")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.celery.yaml").read_text())
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.get_runs() == []
    finally:
        instance.dispose()


# The parts of the chart's values schema (dagster/dagster, 1.13) that deploy/helm/values.yaml
# sets, transcribed: types, enums and the objects the chart closes to unknown keys.
SECRET_REFS = {"type": "array", "items": {"type": "object", "required": ["name"]}}
IMAGE = {
    "type": "object",
    "required": ["repository", "pullPolicy"],
    "properties": {
        "repository": {"type": "string"},
        "tag": {"type": ["string", "integer", "null"]},
        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    },
}
CHART_SUBSCHEMA = {
    "type": "object",
    "properties": {
        "global": {
            "type": "object",
            "properties": {"postgresqlSecretName": {"type": "string"}},
        },
        "dagster-user-deployments": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "enableSubchart": {"type": "boolean"},
                "deployments": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "image", "port"],
                        "properties": {
                            "name": {"type": "string"},
                            "image": IMAGE,
                            "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
                            "port": {"type": "integer"},
                            "envSecrets": SECRET_REFS,
                        },
                    },
                },
            },
        },
        "runLauncher": {
            "type": "object",
            "required": ["type", "config"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
                "config": {
                    "type": "object",
                    "properties": {
                        "k8sRunLauncher": {
                            "type": "object",
                            "properties": {
                                "envSecrets": SECRET_REFS,
                                "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                                "runK8sConfig": {"type": "object"},
                            },
                        }
                    },
                },
            },
        },
        "postgresql": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "postgresqlHost": {"type": "string"},
                "postgresqlUsername": {"type": "string"},
                "postgresqlDatabase": {"type": "string"},
                "postgresqlScheme": {"type": "string"},
                "postgresqlParams": {"type": "object"},
                "service": {"type": "object", "properties": {"port": {"type": "integer"}}},
            },
        },
        "generatePostgresqlPasswordSecret": {"type": "boolean"},
        "dagsterDaemon": {
            "type": "object",
            "properties": {
                "envSecrets": SECRET_REFS,
                "runCoordinator": {
                    "type": "object",
                    "required": ["enabled", "type", "config"],
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                        "config": {"type": "object"},
                    },
                },
                "runMonitoring": {"type": "object"},
                "runRetries": {
                    "type": "object",
                    "required": ["enabled"],
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "maxRetries": {"type": "integer"},
                        "retryOnAssetOrOpFailure": {"type": "boolean"},
                    },
                },
            },
        },
        "telemetry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}},
        },
    },
}


def _values() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())


def test_helm_values_fit_the_chart_schema_and_name_the_code_location() -> None:
    values = _values()
    jsonschema.validate(values, CHART_SUBSCHEMA)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    instance = yaml.safe_load((ROOT / "dagster.celery.yaml").read_text())
    assert queue["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]


def test_every_pod_reads_the_same_settings_secret_and_image() -> None:
    values = _values()
    workers = yaml.safe_load((ROOT / "deploy" / "k8s" / "celery-workers.yaml").read_text())
    assert (workers["apiVersion"], workers["kind"]) == ("apps/v1", "Deployment")
    spec = workers["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert workers["spec"]["selector"]["matchLabels"].items() <= (
        workers["spec"]["template"]["metadata"]["labels"].items()
    )
    secret = container["envFrom"][0]["secretRef"]["name"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for refs in (
        deployment["envSecrets"],
        values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"],
        values["dagsterDaemon"]["envSecrets"],
        values["dagsterWebserver"]["envSecrets"],
    ):
        assert refs == [{"name": secret}]
    image = deployment["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert "dagster-celery worker start -A dagster_celery.app" in container["args"][0]


def test_the_settings_secret_holds_known_settings_of_the_distributed_profile() -> None:
    lines = (ROOT / "deploy" / "k8s" / "lake-settings.example.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    instance_vars = set(re.findall(r"env: (\w+)", (ROOT / "dagster.celery.yaml").read_text()))
    assert set(env) <= set(variables()) | set(SECRETS.values()) | instance_vars
    assert instance_vars <= set(env)
    settings = DeploySettings.from_env(env)
    assert settings.distributed
    assert env["LAKE_STORE_URL"].startswith("s3://")
    assert env["LAKE_CATALOG_URI"].startswith("postgresql+psycopg2://")


def test_the_dockerfile_installs_from_the_lock_with_the_profile_extras() -> None:
    text = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "COPY pyproject.toml uv.lock" in text
    syncs = re.findall(r"^RUN uv sync ([^\n\\]*(?:\\\n[^\n\\]*)*)", text, re.MULTILINE)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    extras = set(re.findall(r"--extra (\w+)", text))
    assert {"postgres", "celery"} <= extras <= set(project["optional-dependencies"])
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.MULTILINE):
        for name in copied.split():
            assert (ROOT / name).exists(), name
    python = re.search(r"FROM python:(\d+\.\d+)", text)
    assert python is not None and python.group(1) in {"3.11", "3.12", "3.13"}
