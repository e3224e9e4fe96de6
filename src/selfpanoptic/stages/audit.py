"""``selfpanoptic audit``: explain HDF5 intermediates to a person; with ground truth, grade them."""

from __future__ import annotations

import argparse

HELP = "explain HDF5 intermediates: provenance, datasets, class histograms"
PARENTS: list = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="HDF5 files written by selfpanoptic")
    parser.add_argument("--ground-truth", metavar="CACHE",
                        help="dataset cache of the same images: grade pseudo-labels and predictions against its labels")


def run(args: argparse.Namespace) -> None:
    from ..audit import audit_lines

    for i, path in enumerate(args.files):
        if i:
            print()
        for line in audit_lines(path, args.ground_truth):
            print(line)
