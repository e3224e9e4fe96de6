"""``selfpanoptic index``: decode and check every file of a dataset, write its manifest."""

from __future__ import annotations

import argparse

from .common import QUIET, THREADS, progress

HELP = "check a dataset and write its manifest (files, sizes, class statistics)"
PARENTS = [THREADS, QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="dataset name recorded in the manifest (synthia, gta, target)")
    parser.add_argument("--format", required=True, choices=["synthia", "gta5", "cityscapes"])
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--split", help="split to index (Cityscapes only)")
    parser.add_argument("--out", required=True, help="manifest CSV to write")


def run(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text
    from ..data.manifest import build_manifest

    manifest = build_manifest(args.name, args.format, args.root, args.split, threads=args.threads, progress=progress(args))
    atomic_write_text(args.out, manifest.to_csv(index=False))
    print(f"indexed {len(manifest)} images of {args.name} -> {args.out}")
