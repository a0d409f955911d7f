"""Dagster assets, generated from the dataset specs: bronze → silver → gold per dataset."""

from __future__ import annotations

import dagster as dg

from lake_pipelines.assets.bronze import build_bronze_asset
from lake_pipelines.assets.gold import build_gold_assets
from lake_pipelines.assets.silver import build_silver_asset
from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec


def build_dataset_assets(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    """Every asset of one dataset, wired layer to layer."""
    bronze = build_bronze_asset(spec)
    silver = build_silver_asset(spec, bronze.key)
    return [bronze, silver, *build_gold_assets(spec, silver.key)]


def build_all_assets(
    datasets: tuple[DatasetSpec, ...] = ALL_DATASETS,
) -> list[dg.AssetsDefinition]:
    return [a for spec in datasets for a in build_dataset_assets(spec)]
