"""Asset check names shared by assets, tests and the UI."""

from __future__ import annotations

from lake_pipelines.assets.common import CONTRACT_CHECK, ROW_ACCOUNTING_CHECK

__all__ = ["CONTRACT_CHECK", "ROW_ACCOUNTING_CHECK"]
