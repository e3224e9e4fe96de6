"""``selfpanoptic mix``: the source manifest (all base images + the extra images holding every required class)."""

from __future__ import annotations

import argparse

from .common import settings, settings_parent

HELP = "build the source: all base images (+ the extra images containing required classes)"
PARENTS = [settings_parent("mixing")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="manifest whose images are all taken (synthia)")
    parser.add_argument("--extra", help="manifest filtered by mixing.require_all (gta); without it the source "
                        "is the base alone (mixing.sources with one dataset)")
    parser.add_argument("--out", required=True, help="mixed manifest CSV to write")
    parser.add_argument("--stats", required=True, help="class statistics CSV to write")
    parser.add_argument("--stats-md", required=True, help="class statistics page (Markdown) to write")


def run(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text
    from ..data.manifest import read_manifest
    from ..mixing import class_statistics, mix_parts, statistics_markdown

    section = settings(args, "mixing")
    require, min_pixels = section["require_all"], section["min_pixels"]
    base = read_manifest(args.base)
    extra = read_manifest(args.extra) if args.extra else None
    parts = mix_parts(base, extra, require, min_pixels)
    table = class_statistics(parts, min_pixels)
    atomic_write_text(args.stats, table.to_csv(index=False))
    atomic_write_text(args.stats_md, statistics_markdown(table, parts, require))
    atomic_write_text(args.out, parts["mixed"].to_csv(index=False))
    if extra is None:
        print(f"source: all {len(base)} images of {base['dataset'].iloc[0]} -> {args.out}")
        return
    selected = parts[f"{extra['dataset'].iloc[0]}_selected"]
    print(f"mixed source: {len(base)} + {len(selected)} of {len(extra)} images -> {args.out}")
