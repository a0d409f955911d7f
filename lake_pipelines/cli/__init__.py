"""`lake-pipelines`: look at the lake from a terminal (summary, tables, snapshots, maintenance).

Only argparse is imported up front: each command imports what it needs (pyiceberg, pyarrow)
when it runs, so ``--help`` answers at once. Dagster is never imported. A mistake in the
arguments, a setting, a table name, a filter or a snapshot is one line on stderr naming what
was wrong and what would be right, with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib.abc
import sys
from typing import NoReturn

from lake_pipelines.errors import LakeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per view or maintenance action."""
    top = _Parser(prog="lake-pipelines", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("summary", help="rows and files per layer and day")
    sub.add_parser("tables", help="the Iceberg tables of the catalog")
    h = sub.add_parser("history", help="a table's snapshots, with tags and lake.* summary")
    h.add_argument("table", help="namespace.table, e.g. lake.events")
    sc = sub.add_parser("scan", help="read a table, optionally as of a snapshot, tag or time")
    sc.add_argument("table", help="namespace.table, e.g. lake.events")
    sc.add_argument("--snapshot", type=int, help="snapshot id (see `history`)")
    sc.add_argument("--tag", help="tag or branch name, e.g. day-2026-11-01")
    sc.add_argument("--as-of-time", help="ISO time, e.g. 2026-11-03T10:00:00; naive means UTC")
    sc.add_argument("--where", help="pyiceberg row filter, e.g. \"event_type = 'click'\"")
    sc.add_argument("--columns", help="comma-separated columns")
    sc.add_argument("--limit", type=_count, default=20, help="rows to print (default 20)")
    ex = sub.add_parser("expire", help="expire old snapshots and delete the files only they used")
    ex.add_argument("table", help="namespace.table, e.g. lake.events")
    ex.add_argument("--older-than-days", type=float, default=7.0)
    ex.add_argument("--retain-last", type=_count, default=5)
    ex.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    orph = sub.add_parser("orphans", help="list (or --delete) files no snapshot references")
    orph.add_argument("table", help="namespace.table, e.g. lake.events")
    orph.add_argument("--older-than-days", type=float, default=3.0)
    orph.add_argument("--delete", action="store_true")
    return top


def _count(text: str) -> int:
    value = int(text)  # argparse turns the ValueError into "invalid _count value"
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


_count.__name__ = "whole number"  # what argparse names in "invalid <type> value"


def run(args: argparse.Namespace) -> str:
    """The text a command prints. Raises LakeError for anything the user can fix."""
    from lake_pipelines.config import CatalogSettings, StoreSettings

    store = StoreSettings.from_env().object_store()
    settings = CatalogSettings.from_env()
    if args.command == "summary":
        from lake_pipelines.cli.summary import summary

        return summary(store, settings)
    if args.command in ("expire", "orphans"):
        from lake_pipelines.cli import maintenance

        catalog = settings.load(store)
        if args.command == "expire":
            return maintenance.expire(catalog, store, args)
        return maintenance.orphans(catalog, store, args)
    from lake_pipelines.cli import views

    if args.command == "scan":
        return views.scan(views.open_table(settings, store, args.table), args)
    found = views.table_views(settings, store, getattr(args, "table", None))
    return views.tables(found) if args.command == "tables" else views.history(found[0])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        print(run(args))
    except LakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


class _HidePandas(importlib.abc.MetaPathFinder):
    """Makes pandas look uninstalled. pyarrow imports it, when it is installed, on its first
    use of pyarrow.dataset (which pyiceberg's scans go through), and that costs a `scan` about
    0.7 s of its 2; the CLI's own code and what it calls never use pandas, and pyarrow treats
    it as optional. Only for a process that is the command (`command`), never a library user."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by lake-pipelines)")


def command() -> int:
    """The `lake-pipelines` executable: `main`, in a process that never imports pandas."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _HidePandas())
    return main()


if __name__ == "__main__":
    sys.exit(command())
