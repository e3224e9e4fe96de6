"""``selfpanoptic index``: decode and check every file of a dataset, write its manifest.

With ``--threads N``, N worker processes decode and check the samples
(:func:`selfpanoptic.data.parallel.ordered_map`); the manifest and the problems reported are the
same whatever N.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import QUIET, THREADS, progress

HELP = "check a dataset and write its manifest (files, sizes, class statistics)"
PARENTS = [THREADS, QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="dataset name in the config (synthia, gta, target); messages use it")
    parser.add_argument("--format", required=True, choices=["synthia", "gta5", "cityscapes", "images"])
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--split", help="split to index (cityscapes: required; images: the split's name)")
    parser.add_argument("--glob", help="images format: pattern of the split's images below --root (default **/*.png)")
    parser.add_argument("--labels", help="images format: folder of the split's <id>_gtFine_labelIds.png and "
                        "_gtFine_instanceIds.png (none: the split is unlabelled)")
    parser.add_argument("--out", required=True, help="manifest CSV to write")
    parser.add_argument("--one-size", action="store_true",
                        help="refuse a split whose images differ in size (the workflow asks it of the target's "
                             "val split, which is predicted and scored at its files' resolution)")
    parser.add_argument(
        "--unpaired", choices=["error", "skip"], default="error",
        help="an image without its label file(s), or a label file without its image: error (default) "
             "or skip it and index the rest (config: datasets.<name>.unpaired)",
    )
    parser.add_argument(
        "--size-mismatch", choices=["error", "skip", "resize"], default="error",
        help="a label whose size differs from its image's: error (default), skip the pair, or resize "
             "the label to the image, nearest (config: datasets.<name>.size_mismatch)",
    )


def check_options(args: argparse.Namespace) -> None:
    """Refuse option mistakes with one message naming the option and the fix, before any file is read."""
    from ..data import READERS
    from ..errors import InputError

    root = Path(args.root)
    layout = READERS[args.format].layout_hint
    if root.exists() and not root.is_dir():
        raise InputError(
            "--root is a file, not a dataset folder", root,
            f"point --root (datasets.{args.name}.root in the config) at the folder laid out as {layout}",
        )
    if args.format == "cityscapes" and not args.split:
        folder = root / "leftImg8bit"
        found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        raise InputError(
            "--split is missing: the cityscapes format is indexed one split at a time", None,
            f"add --split with one of the splits under {folder} ({', '.join(found) or 'none found'}); "
            f"the workflow passes datasets.{args.name}.train_split and val_split",
        )
    if args.format not in ("cityscapes", "images") and args.split:
        raise InputError(
            f"--split {args.split} was given, but the {args.format} format has no splits", None,
            "drop --split: only --format cityscapes (and images, where it names the split) takes one",
        )
    if args.format != "images" and (args.glob or args.labels):
        raise InputError(
            f"--glob and --labels are options of --format images, not {args.format}", None,
            "drop them, or use --format images for a folder of images",
        )
    if args.glob and (Path(args.glob).is_absolute() or args.glob.startswith(("/", "\\"))):
        inside = Path(args.glob).is_relative_to(root.absolute())
        example = Path(args.glob).relative_to(root.absolute()).as_posix() if inside else "**/*.png"
        raise InputError(
            f"--glob {args.glob!r} is an absolute path; it is matched below --root", None,
            f"write it relative to --root ({root}): {example!r} (datasets.{args.name}.train_glob / val_glob "
            "in the config)",
        )


def reader_options(args: argparse.Namespace) -> dict | None:
    """The image-folder reader's options (glob, labels folder); None for the other formats."""
    if args.format != "images":
        return None
    return {"glob": args.glob or "**/*.png", "labels": args.labels}


def run(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text
    from ..data.ground_truth import uniform_size
    from ..data.manifest import build_manifest
    from ..data.problems import warning_lines

    check_options(args)
    manifest, warnings = build_manifest(
        args.name, args.format, args.root, args.split, threads=args.threads, progress=progress(args),
        unpaired=args.unpaired, size_mismatch=args.size_mismatch, options=reader_options(args),
    )
    if args.one_size and len(manifest):
        uniform_size(manifest, args.root)
    if warnings:
        policies = {"unpaired": args.unpaired, "size_mismatch": args.size_mismatch}
        lines = warning_lines(repr(args.name), warnings, policies, args.name)
        print("\n".join([f"selfpanoptic index: {lines[0]}", *lines[1:]]), file=sys.stderr)
    atomic_write_text(args.out, manifest.to_csv(index=False))
    resized = int(manifest["label_resized"].sum())
    left_out = len(warnings) - resized
    notes = ([f"{left_out} file(s) left out"] if left_out else []) + ([f"{resized} label(s) resized"] if resized else [])
    if not manifest["labelled"].all():
        notes.append("no label files: unlabelled, labels read as ignore")
    print(f"indexed {len(manifest)} images of {args.name} -> {args.out}" + (f" ({', '.join(notes)})" if notes else ""))
