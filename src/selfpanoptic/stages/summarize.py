"""``selfpanoptic summarize``: collect the evaluation stages' tables into ``results/summary/metrics.csv``."""

from __future__ import annotations

import argparse

HELP = "collect metric tables into results/summary/metrics.csv"
PARENTS: list = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="summary CSV to write")
    parser.add_argument("tables", nargs="+", help="metric CSVs of the evaluation stages")


def run(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text
    from ..metrics.table import collect_metrics

    table = collect_metrics(args.tables)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table[table["class"].isin(["all", "all16", "all13"])].to_string(index=False))
