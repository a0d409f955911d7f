"""A code location with one asset that sleeps: something to kill mid-run in the reaper tests."""

import time

import dagster as dg


@dg.asset
def slow(context: dg.AssetExecutionContext) -> None:
    context.log.info("sleeping")
    time.sleep(600)


defs = dg.Definitions(assets=[slow], executor=dg.in_process_executor)
