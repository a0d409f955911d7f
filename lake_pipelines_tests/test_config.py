"""Settings: declared once, typed, read when asked (never at import), errors name the variable."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lake_pipelines import config, config_fields
from lake_pipelines.config import (
    CatalogSettings,
    DataFusionSettings,
    LakeSettings,
    StoreSettings,
)
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.memory import default_query_memory

# Every variable and default as they were before the settings object; users' .env files rely on
# them. (store URL, catalog URI and warehouse default to places under LAKE_HOME / the store.)
DEFAULTS = {
    "LAKE_HOME": ".lake",
    "LAKE_STORE_URL": "file://<LAKE_HOME>",
    "LAKE_S3_ENDPOINT_URL": "$AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS itself",
    "LAKE_S3_REGION": "",
    "LAKE_S3_ALLOW_HTTP": "false",
    "LAKE_S3_ADDRESSING_STYLE": "auto",
    "LAKE_S3_MAX_ATTEMPTS": "5",
    "LAKE_GCS_ENDPOINT_URL": "",
    "LAKE_AZURE_ACCOUNT_NAME": "",
    "LAKE_CATALOG_NAME": "lake",
    "LAKE_CATALOG_TYPE": "sql",
    "LAKE_CATALOG_URI": "sqlite:///<LAKE_HOME>/catalog.db",
    "LAKE_WAREHOUSE": "<LAKE_STORE_URL>/warehouse",
    "LAKE_DF_TARGET_PARTITIONS": "0",
    "LAKE_DF_BATCH_SIZE": "65536",
    "LAKE_DF_MEMORY_LIMIT": "auto: 2GiB, or 25% of the container's / machine's memory if less",
    "LAKE_DF_SPILL_DIR": "the OS temporary directory",
    "LAKE_PROMETHEUS_PUSHGATEWAY": "",
    "LAKE_PROMETHEUS_JOB": "lake_pipelines",
    "LAKE_PROMETHEUS_TIMEOUT": "5",
    "LAKE_EXECUTOR": "in_process",
    "LAKE_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "LAKE_CELERY_BACKEND_URL": "<LAKE_CELERY_BROKER_URL>",
    "LAKE_CELERY_WORKERS": "2",
    "LAKE_BACKFILL_DAYS_PER_RUN": "5",
    "LAKE_CELERY_VISIBILITY_TIMEOUT": "3600",
}


def test_every_variable_and_default_is_kept() -> None:
    assert {var: s.default for var, s in config.variables().items()} == DEFAULTS


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({"AWS_ENDPOINT_URL": "https://all.example"}, "https://all.example"),
        ({"AWS_ENDPOINT_URL_S3": "https://s3.example"}, "https://s3.example"),
        (  # botocore: the service-specific variable wins over the global one
            {
                "AWS_ENDPOINT_URL": "https://all.example",
                "AWS_ENDPOINT_URL_S3": "https://s3.example",
            },
            "https://s3.example",
        ),
        (  # ours wins over both
            {
                "LAKE_S3_ENDPOINT_URL": "https://lake.example",
                "AWS_ENDPOINT_URL": "https://all.example",
                "AWS_ENDPOINT_URL_S3": "https://s3.example",
            },
            "https://lake.example",
        ),
        (  # botocore's switch to ignore configured endpoints
            {
                "AWS_ENDPOINT_URL": "https://all.example",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
            },
            "",
        ),
        ({}, ""),
    ],
)
def test_aws_endpoint_variables_are_honoured_as_botocore_does(
    env: dict[str, str], endpoint: str
) -> None:
    settings = StoreSettings.from_env({"LAKE_STORE_URL": "s3://bucket/lake", **env})
    assert settings.endpoint_url == endpoint
    store = settings.object_store(env)
    assert store.endpoint_url == endpoint
    if endpoint:  # every S3 client goes there
        assert store.iceberg_properties()["s3.endpoint"] == endpoint
        assert store.fs.endpoint_url == endpoint
        arrow = store.arrow_fs.__reduce__()[1][0]
        assert f"{arrow['scheme']}://{arrow['endpoint_override']}" == endpoint


def test_defaults_are_typed_and_live_under_lake_home(tmp_path: Path) -> None:
    env = {"LAKE_HOME": str(tmp_path)}
    settings = LakeSettings.from_env(env)
    assert settings.store == StoreSettings(url=f"file://{tmp_path}")
    assert settings.store.allow_http is False and settings.store.max_attempts == 5
    assert settings.catalog == CatalogSettings(uri=f"sqlite:///{tmp_path / 'catalog.db'}")
    assert (settings.catalog.name, settings.catalog.type) == ("lake", "sql")
    # every field its default, the memory limit resolved for this machine (auto)
    assert settings.datafusion == DataFusionSettings(memory_limit=default_query_memory())
    assert settings.datafusion.batch_size == 65536


def test_environment_values_are_parsed_to_their_types() -> None:
    env = {
        "LAKE_STORE_URL": "s3://bucket/lake",
        "LAKE_S3_ALLOW_HTTP": "Yes",
        "LAKE_S3_ADDRESSING_STYLE": "path",
        "LAKE_S3_MAX_ATTEMPTS": "3",
        "LAKE_DF_MEMORY_LIMIT": "2GiB",
        "LAKE_DF_TARGET_PARTITIONS": "1_000",
        "LAKE_S3_REGION": "",  # empty is unset
    }
    settings = LakeSettings.from_env(env)
    assert settings.store == StoreSettings(
        url="s3://bucket/lake", allow_http=True, addressing_style="path", max_attempts=3
    )
    assert settings.datafusion.memory_limit == 2 << 30
    assert settings.datafusion.target_partitions == 1000


@pytest.mark.parametrize(
    ("var", "value", "reason"),
    [
        ("LAKE_S3_ALLOW_HTTP", "maybe", "expected true or false"),
        ("LAKE_S3_MAX_ATTEMPTS", "five", "expected a whole number"),
        ("LAKE_DF_BATCH_SIZE", "8k rows", "expected a whole number"),
        ("LAKE_DF_MEMORY_LIMIT", "lots", "expected a whole number"),
        ("LAKE_S3_ADDRESSING_STYLE", "sideways", "use auto, path or virtual"),
    ],
)
def test_a_bad_value_names_its_variable(var: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as err:
        LakeSettings.from_env({var: value})
    assert (err.value.setting, err.value.value) == (var, value)
    assert var in str(err.value)


def test_overrides_win_over_the_environment() -> None:
    env = {"LAKE_S3_MAX_ATTEMPTS": "3", "LAKE_S3_ALLOW_HTTP": "true", "LAKE_S3_REGION": "eu"}
    store = StoreSettings.from_env(env, max_attempts=7, allow_http=False, region=None)
    assert (store.max_attempts, store.allow_http, store.region) == (7, False, "eu")
    # text is parsed as the variable would be; an empty override is unset like an empty variable
    store = StoreSettings.from_env(env, max_attempts="9", region="")
    assert (store.max_attempts, store.region) == (9, "eu")
    lake = LakeSettings.from_env(env, datafusion={"memory_limit": "1MiB"})
    assert lake.datafusion.memory_limit == 1 << 20 and lake.store.max_attempts == 3


def test_an_override_of_the_wrong_type_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        StoreSettings.from_env({}, allow_http=3)
    assert err.value.setting == "LAKE_S3_ALLOW_HTTP"
    with pytest.raises(ConfigError) as err:
        DataFusionSettings.from_env({}, batch_size=True)
    assert err.value.setting == "LAKE_DF_BATCH_SIZE"
    with pytest.raises(TypeError, match="no setting"):
        StoreSettings.from_env({}, bucket="b")


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    assert "access_key_id" not in StoreSettings.settings()
    env = {"AWS_ACCESS_KEY_ID": "AKIA-test", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
    store = StoreSettings.from_env(env, url=f"file://{tmp_path}").object_store(env)
    assert (store.access_key_id, store.secret_access_key, store.session_token) == (
        "AKIA-test",
        "s3cr3t-value",
        "",
    )
    assert "AKIA-test" not in repr(store) and "s3cr3t-value" not in repr(store)


def test_the_store_checks_what_the_settings_cannot() -> None:
    settings = StoreSettings.from_env({"LAKE_S3_ENDPOINT_URL": "http://127.0.0.1:9000"})
    with pytest.raises(ConfigError) as err:
        settings.object_store({})
    assert err.value.setting == "LAKE_S3_ENDPOINT_URL"  # plain HTTP without LAKE_S3_ALLOW_HTTP


def test_catalog_defaults_to_sqlite_under_lake_home_with_the_warehouse_on_the_store(
    tmp_path: Path,
) -> None:
    env = {"LAKE_HOME": str(tmp_path / "home")}
    store = StoreSettings.from_env(env).object_store(env)
    settings = CatalogSettings.from_env(env)
    props = settings.properties(store)
    assert props["uri"] == f"sqlite:///{tmp_path / 'home' / 'catalog.db'}"
    assert props["warehouse"] == store.uri("warehouse")
    catalog = settings.load(store)
    catalog.create_namespace("lake")
    assert ("lake",) in catalog.list_namespaces()
    assert (tmp_path / "home" / "catalog.db").exists()


def test_a_catalog_that_cannot_open_names_the_uri(tmp_path: Path) -> None:
    store = StoreSettings.from_env({}, url=f"file://{tmp_path}").object_store({})
    settings = CatalogSettings.from_env({}, type="no-such-kind", uri="nowhere://x")
    with pytest.raises(ConfigError, match="cannot open no-such-kind catalog") as err:
        settings.load(store)
    assert (err.value.setting, err.value.value) == ("LAKE_CATALOG_URI", "nowhere://x")


def test_datafusion_settings_become_session_settings() -> None:
    env = {"LAKE_DF_TARGET_PARTITIONS": "2", "LAKE_DF_SPILL_DIR": "/tmp/spill"}
    session = DataFusionSettings.from_env(env).session_settings()
    assert (session.target_partitions, session.batch_size) == (2, 65536)
    assert (session.memory_limit, session.spill_dir) == (default_query_memory(), "/tmp/spill")


def test_definitions_read_no_environment_at_import(tmp_path: Path) -> None:
    source = (Path(config.__file__).parent / "definitions.py").read_text()
    names = {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}
    assert not names & {"getenv", "environ"}
    # A bad value loads fine; the run that builds the store is the one that fails, naming it.
    probe = (
        "import lake_pipelines.definitions as d\n"
        "from lake_pipelines.errors import ConfigError\n"
        "try:\n"
        "    d.defs.resources['object_store'].get_store()\n"
        "except ConfigError as exc:\n"
        "    print(exc.setting)\n"
    )
    env = {**os.environ, "LAKE_S3_MAX_ATTEMPTS": "lots", "LAKE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "LAKE_S3_MAX_ATTEMPTS"


def test_gcs_and_azure_credentials_come_from_the_environment_only() -> None:
    env = {
        "LAKE_STORE_URL": "az://container/lake",
        "LAKE_AZURE_ACCOUNT_NAME": "acct",
        "AZURE_STORAGE_ACCOUNT_KEY": "c2VjcmV0",
        "AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct;AccountKey=c2VjcmV0",
        "LAKE_GCS_ENDPOINT_URL": "https://gcs.internal",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
    }
    settings = StoreSettings.from_env(env)
    assert (settings.azure_account_name, settings.gcs_endpoint_url) == (
        "acct",
        "https://gcs.internal",
    )
    store = settings.object_store(env)
    assert store.azure_account_key == "c2VjcmV0"
    assert store.azure_connection_string.startswith("AccountName=acct")
    assert store.gcs_credentials == "/keys/sa.json"
    assert "c2VjcmV0" not in repr(store) and "sa.json" not in repr(store)
    assert (
        store.iceberg_properties()["adls.connection-string"]
        == env["AZURE_STORAGE_CONNECTION_STRING"]
    )


def test_field_types_are_resolved_once_per_section_and_values_on_every_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Loading the code location resolves the deployment profile once per asset (~20 times):
    # `typing.get_type_hints` on every read was most of that (benchmarks/ANALYSIS.md, run 25).
    from lake_pipelines.definitions import build_definitions

    resolved: list[type] = []
    real = config_fields.typing.get_type_hints
    monkeypatch.setattr(config_fields, "_HINTS", {})

    def get_type_hints(c: type) -> dict[str, Any]:
        resolved.append(c)
        return real(c)

    monkeypatch.setattr(config_fields.typing, "get_type_hints", get_type_hints)
    build_definitions()
    assert resolved and len(resolved) == len(set(resolved))
    # the values are not cached: each read sees the environment of the moment
    for max_attempts in (3, 7):
        monkeypatch.setenv("LAKE_S3_MAX_ATTEMPTS", str(max_attempts))
        assert StoreSettings.from_env().max_attempts == max_attempts
