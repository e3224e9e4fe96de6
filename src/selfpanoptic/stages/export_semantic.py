"""``selfpanoptic export-semantic``: a semantic prediction as official labelIds PNGs, plus colour PNGs.

Written as ``<out>/<city>/<name>.png`` (``<city>``: the folder of the image file, ``<name>``: its
file name, e.g. ``frankfurt_000000_000294_leftImg8bit.png``), which
``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling`` and the Cityscapes test server
read; the colour pictures go to ``--colour-out`` in the same layout. Each folder appears only
when complete.
"""

from __future__ import annotations

import argparse

from .common import QUIET, progress

HELP = "write a semantic prediction as official labelIds PNGs (and colour PNGs)"
PARENTS = [QUIET]
FOLDER_OUTPUTS = ("out", "colour_out")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prediction", required=True, help="semantic prediction HDF5 (predict-semantic)")
    parser.add_argument("--manifest", required=True, help="index manifest CSV of the same images (for their file names)")
    parser.add_argument("--out", required=True, help="folder of labelIds PNGs to write")
    parser.add_argument("--colour-out", help="folder of colour PNGs to write")


def run(args: argparse.Namespace) -> None:
    import contextlib
    from pathlib import Path

    from tqdm import tqdm

    from ..atomic import atomic_output
    from ..data.manifest import read_manifest
    from ..formats.semantic_png import write_semantic_prediction
    from ..intermediates import SemanticPrediction

    manifest = read_manifest(args.manifest)
    images = [Path(p) for p in manifest["image_path"]]
    with SemanticPrediction.open(args.prediction, manifest["image_id"].astype(str).tolist(), args.manifest) as pred, \
            contextlib.ExitStack() as outputs:
        label_ids = outputs.enter_context(atomic_output(args.out))
        colour = outputs.enter_context(atomic_output(args.colour_out)) if args.colour_out else None
        for i, image in enumerate(tqdm(images, desc="export semantic", disable=not progress(args))):
            name = Path(image.parent.name) / image.with_suffix(".png").name
            write_semantic_prediction(label_ids / name, pred["labels"][i], None if colour is None else colour / name)
        for folder in (label_ids, colour):  # an empty split still gives its folders
            if folder is not None:
                folder.mkdir(exist_ok=True)
    print(f"labelIds PNGs -> {args.out}" + (f", colour PNGs -> {args.colour_out}" if args.colour_out else ""))
