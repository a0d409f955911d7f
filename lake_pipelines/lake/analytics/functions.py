"""Our DataFusion functions: `extract_domain` (UDF) and `weighted_median` (UDAF)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import Accumulator, udaf, udf

# -- our functions ----------------------------------------------------------------------------

_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<host>[^:/?#]+)"


def _extract_domain(urls: pa.Array) -> pa.Array:
    """Host of each URL, lower-cased, without a leading ``www.``; null if there is none."""
    hosts = pc.struct_field(pc.extract_regex(urls, _HOST), "host")
    hosts = pc.utf8_lower(hosts)
    return pc.replace_substring_regex(hosts, r"^www\.", "")


EXTRACT_DOMAIN = udf(_extract_domain, [pa.string()], pa.string(), "immutable", "extract_domain")


class _WeightedMedian(Accumulator):
    """Exact weighted median: the smallest value whose cumulative weight reaches half the total.

    DataFusion ships exact and approximate percentiles, but none weighted by another column.
    Rows with a null value or a weight <= 0 do not count.
    """

    def __init__(self) -> None:
        self._values: list[pa.Array] = []
        self._weights: list[pa.Array] = []

    def update(self, values: pa.Array, weights: pa.Array) -> None:
        keep = pc.and_(pc.is_valid(values), pc.greater(pc.fill_null(weights, 0), 0))
        self._values.append(pc.cast(values.filter(keep), pa.float64()))
        self._weights.append(pc.cast(weights.filter(keep), pa.float64()))

    def merge(self, states: list[pa.Array]) -> None:
        # Arrow all the way: no Python float per value (partial states can be millions long)
        for i in range(len(states[0])):
            values, weights = states[0][i].values, states[1][i].values
            if values is not None and len(values):
                self._values.append(pc.cast(values, pa.float64()))
                self._weights.append(pc.cast(weights, pa.float64()))

    def state(self) -> list[pa.Scalar]:
        values = pa.concat_arrays(self._values) if self._values else pa.array([], pa.float64())
        weights = pa.concat_arrays(self._weights) if self._weights else pa.array([], pa.float64())
        offsets = pa.array([0, len(values)], pa.int32())
        return [
            pa.ListArray.from_arrays(offsets, values)[0],
            pa.ListArray.from_arrays(offsets, weights)[0],
        ]

    def evaluate(self) -> pa.Scalar:
        if not self._values:
            return pa.scalar(None, pa.float64())
        values = pa.concat_arrays(self._values).to_numpy()
        weights = pa.concat_arrays(self._weights).to_numpy()
        if len(values) == 0:
            return pa.scalar(None, pa.float64())
        order = values.argsort(kind="stable")
        cumulative = weights[order].cumsum()
        i = int((cumulative >= cumulative[-1] / 2).argmax())
        return pa.scalar(float(values[order][i]), pa.float64())


WEIGHTED_MEDIAN = udaf(
    _WeightedMedian,
    [pa.float64(), pa.float64()],
    pa.float64(),
    [pa.list_(pa.float64()), pa.list_(pa.float64())],
    "immutable",
    "weighted_median",
)
