"""``selfpanoptic ablation``: collect every experiment's and seed's metric tables into results/summary/ablation.csv."""

from __future__ import annotations

import argparse

HELP = "collect the metric tables of every experiment and seed into results/summary/ablation.csv"
PARENTS: list = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", nargs=3, action="append", required=True, metavar=("EXPERIMENT", "SEED", "CSV"),
                        help="a metric CSV of a score-* stage, with the experiment (main or an experiment's "
                        "name) and seed of its run (repeatable)")
    parser.add_argument("--out", required=True, help="ablation CSV to write")


def run(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text
    from ..errors import InputError
    from ..metrics.ablation import ablation_by_run, collect_ablation, format_mean_std

    entries = []
    for experiment, seed, path in args.table:
        if not seed.isdigit():
            raise InputError(f"--table {experiment} {seed} {path}: the seed must be a whole number, got {seed!r}",
                             fix="give --table EXPERIMENT SEED CSV")
        entries.append((experiment, int(seed), path))
    table = collect_ablation(entries)
    atomic_write_text(args.out, table.to_csv(index=False))
    wide = ablation_by_run(table, "semantic", "mIoU")
    for experiment, row in wide.iterrows():
        cells = [f"{r} {format_mean_std(row[('mean', r)], row[('std', r)])}" for r in wide["mean"].columns]
        print(f"{experiment}: mIoU " + " | ".join(cells))
