"""Writer settings: the lake's default codec and level, a spec's own, an Iceberg table's."""

from __future__ import annotations

import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.iceberg.tables import DEFAULT_PROPERTIES
from lake_pipelines.lake.parquet.options import writer_options

EVENTS = get_dataset("events")


def test_hive_parquet_columns_the_spec_leaves_open_get_zstd_1_and_a_named_level_stays() -> None:
    opts = writer_options(EVENTS)
    assert set(opts["compression"].values()) == {"zstd"}
    levels = opts["compression_level"]
    assert levels["url"] == 6  # the events spec names it
    assert {leaf: lv for leaf, lv in levels.items() if leaf != "url"} == {
        leaf: 1 for leaf in levels if leaf != "url"
    }
    assert "properties.browser" in levels and "latencies_ms.list.element" in levels


def test_the_lakes_iceberg_tables_write_at_zstd_3() -> None:
    opts = writer_options(EVENTS, table_properties=DEFAULT_PROPERTIES)
    assert opts["compression_level"]["ts"] == 3
    assert opts["compression_level"]["properties.country"] == 3
    assert opts["compression_level"]["url"] == 6


def test_an_iceberg_tables_codec_and_level_replace_the_defaults_only() -> None:
    opts = writer_options(
        EVENTS,
        table_properties={
            "write.parquet.compression-codec": "zstd",
            "write.parquet.compression-level": "9",
        },
    )
    assert opts["compression_level"]["ts"] == 9
    assert opts["compression_level"]["url"] == 6  # the spec's word wins over the table's

    snappy = writer_options(EVENTS, table_properties={"write.parquet.compression-codec": "SNAPPY"})
    assert snappy["compression"]["ts"] == "snappy"
    assert snappy["compression"]["url"] == "zstd"  # named by the spec
    assert set(snappy["compression_level"]) == {"url"}  # snappy has no level

    plain = writer_options(
        EVENTS, table_properties={"write.parquet.compression-codec": "uncompressed"}
    )
    assert plain["compression"]["price"] == "none"


@pytest.mark.parametrize(
    ("properties", "setting"),
    [
        ({"write.parquet.compression-codec": "zip"}, "write.parquet.compression-codec"),
        ({"write.parquet.compression-level": "high"}, "write.parquet.compression-level"),
    ],
)
def test_a_table_property_the_writer_cannot_use_is_named(
    properties: dict[str, str], setting: str
) -> None:
    with pytest.raises(ConfigError) as err:
        writer_options(EVENTS, table_properties=properties)
    assert err.value.setting == setting
