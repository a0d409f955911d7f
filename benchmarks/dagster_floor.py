"""Dagster's own floor for task 7: one partitioned asset that does nothing, in-process executor.

`dagster asset materialize -m benchmarks.dagster_floor --select floor --partition <day>` costs what
any code location pays for the CLI, the instance, the run and its event log, so the lake's
one-partition run can be read against it as well as against a bare ``import dagster``.
"""

import dagster as dg


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2020-01-01"))
def floor(context: dg.AssetExecutionContext) -> None:
    """Nothing but the log line every real asset writes too."""
    context.log.info(f"partition {context.partition_key}")


defs = dg.Definitions(assets=[floor], executor=dg.in_process_executor)
