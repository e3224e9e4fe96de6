"""``selfpanoptic panoptic-gt``: Cityscapes panoptic ground truth of an indexed split's instanceIds files.

PQ is scored against Cityscapes panoptic ground truth, which cityscapesscripts' createPanopticImgs
makes from a gtFine folder (``<split>/<city>/<id>_gtFine_instanceIds.png``). A Cityscapes target
ships that folder; an image-folder target's val labels may lie anywhere, so this stage links each
manifest row's instanceIds file into a temporary gtFine layout and converts that. The JSON's image
ids are the manifest's image ids, as the predictions name them.
"""

from __future__ import annotations

import argparse

from .common import QUIET

HELP = "Cityscapes panoptic ground truth (JSON + PNG folder) of an indexed split with labels"
PARENTS = [QUIET]
FOLDER_OUTPUTS = ("out_folder",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV of a labelled split (from index)")
    parser.add_argument("--out-json", required=True, help="panoptic ground-truth JSON to write")
    parser.add_argument("--out-folder", required=True, help="folder of panoptic ground-truth PNGs to write")


def run(args: argparse.Namespace) -> None:
    import contextlib
    import io
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    from ..atomic import atomic_output
    from ..data.manifest import read_manifest
    from ..errors import InputError

    manifest = read_manifest(args.manifest)
    if not manifest["labelled"].all() or (manifest["instance_path"] == "").any():
        raise InputError("the split has no instanceIds files to make panoptic ground truth from", args.manifest,
                         "give the split Cityscapes gtFine labels (for an images target: datasets.target.val_labels)")
    with tempfile.TemporaryDirectory() as tmp, atomic_output(args.out_folder) as folder, \
            atomic_output(args.out_json) as json_file:
        split_dir = Path(tmp) / "gtFine" / "split" / "all"
        split_dir.mkdir(parents=True)
        for row in manifest.itertuples(index=False):
            os.symlink(Path(row.instance_path).resolve(), split_dir / f"{row.image_id}_gtFine_instanceIds.png")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per file
            convert2panoptic(cityscapesPath=str(Path(tmp) / "gtFine"), outputFolder=tmp, setNames=["split"])
        shutil.move(Path(tmp) / "cityscapes_panoptic_split.json", json_file)
        shutil.move(Path(tmp) / "cityscapes_panoptic_split", folder)
    print(f"panoptic ground truth of {len(manifest)} images -> {args.out_json}, {args.out_folder}")
