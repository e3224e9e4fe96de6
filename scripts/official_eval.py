"""Run cityscapesscripts' own evaluators on a run's exported files and compare with metrics.csv.

Usage (from the repository root, after the workflow ran):

    python scripts/official_eval.py --target data/toy/cityscapes-like --run results/round1

reads ``<run>/semantic/labelIds`` (``export-semantic``), ``<run>/instance/official``
(``export-instance``) and ``<run>/panoptic`` (``fuse-panoptic``), scores them with
``evalPixelLevelSemanticLabeling``, ``evalInstanceLevelSemanticLabeling`` and
``evalPanopticSemanticLabeling`` against ``<target>/gtFine/<split>``, prints the official numbers
next to the run's rows of ``<results>/summary/metrics.csv`` and exits with 1 when one differs by
more than the table's rounding (0.00005 percentage points).

Two things make the official scripts usable here, without changing what they compute:
numpy >= 2.4 removed ``np.in1d``, which they still call, and their JSON writer cannot write numpy
integers (both are bridged while they run, see :func:`numpy_2`); and the instance evaluator's minimum instance size
is the official 100 pixels at 1024x2048 scaled by image area (``--min-region-size``, as the
workflow's ``evaluation.instance_min_region_size: scaled``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

TOLERANCE = 5e-5
"""metrics.csv holds percentages rounded to 4 decimals."""


@contextlib.contextmanager
def numpy_2(module):
    """Let an official evaluator ``module`` run under numpy 2 for the duration: ``np.in1d`` (removed
    in numpy 2.4) is ``np.isin(...).ravel()``, its documented replacement, and the module's JSON
    writer (if it has one) can write numpy scalars. What it computes is unchanged."""
    saved = {name: module.__dict__[name] for name in ("writeDict2JSON",) if name in module.__dict__}
    had_in1d, in1d = "in1d" in np.__dict__, np.__dict__.get("in1d")
    np.in1d = lambda a, b: np.isin(a, b).ravel()
    if saved:
        def write_json(data, file_name):
            with open(file_name, "w") as handle:
                json.dump(data, handle, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__)

        module.writeDict2JSON = write_json
    try:
        yield
    finally:
        module.__dict__.update(saved)
        if had_in1d:
            np.in1d = in1d
        else:
            del np.in1d


@contextlib.contextmanager
def inside(folder: Path):
    """Work in ``folder`` for the duration (the official scripts write files into the working directory)."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def pixel_level(gt_folder: Path, prediction: Path) -> dict:
    """``evalPixelLevelSemanticLabeling``'s result dict for the ``*_gtFine_labelIds.png`` under ``gt_folder``."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = official.args
    args.quiet, args.JSONOutput, args.colorized, args.bold, args.nocol = True, False, False, "", ""
    args.evalInstLevelScore = False  # the instance-weighted IoU is not a headline number
    args.predictionPath, args.predictionWalk = str(prediction.resolve()), None
    gts = sorted(str(p) for p in gt_folder.rglob("*_gtFine_labelIds.png"))
    with numpy_2(official):
        return official.evaluateImgLists([official.getPrediction(args, g) for g in gts], gts, args)


def instance_level(gt_folder: Path, prediction: Path, min_region_size: int, work: Path) -> dict:
    """``evalInstanceLevelSemanticLabeling``'s ``averages`` for the ``*_gtFine_instanceIds.png`` under
    ``gt_folder``; its ground-truth cache file is written to ``work`` (it reuses one it finds)."""
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as official

    args = official.CArgs()
    args.cityscapesPath = str(gt_folder)
    args.exportFile = str(work / "result.json")
    args.groundTruthSearch = str(gt_folder / "*" / "*_gtFine_instanceIds.png")
    args.overlaps = np.arange(0.5, 1.0, 0.05)
    args.minRegionSizes = np.array([min_region_size, 1000, 1000])
    args.distanceThs = np.array([float("inf"), 100, 50])
    args.distanceConfs = np.array([-float("inf"), 0.5, 0.5])
    args.gtInstancesFile = str(work / "gtInstances.json")
    args.distanceAvailable = False
    args.JSONOutput, args.quiet, args.csv, args.colorized = False, True, False, False
    args.instLabels = []
    args.predictionPath, args.predictionWalk = str(prediction.resolve()), None
    gts = sorted(str(p) for p in gt_folder.rglob("*_gtFine_instanceIds.png"))
    with numpy_2(official), inside(work):  # it writes matches.json into the working directory
        return official.evaluateImgLists([official.getPrediction(g, args) for g in gts], gts, args)["averages"]


def panoptic(gt_fine: Path, split: str, prediction: Path, work: Path) -> dict:
    """``evalPanopticSemanticLabeling``'s result dict for a ``fuse-panoptic`` folder."""
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    with inside(work):
        return evaluatePanoptic(str(gt_fine / f"cityscapes_panoptic_{split}.json"),
                                str(gt_fine / f"cityscapes_panoptic_{split}"), str(prediction / "panoptic.json"),
                                str(prediction / "panoptic"), str(work / "panoptic.json"))


def scaled_min_region_size(gt_folder: Path) -> int:
    """The official 100 pixels at 1024x2048 scaled by the area of the first ground-truth image."""
    from selfpanoptic.metrics.instance import min_region_size_for

    width, height = Image.open(next(gt_folder.rglob("*_gtFine_instanceIds.png"))).size
    return min_region_size_for(height, width)


def official_rows(target: Path, run: Path, split: str, min_region_size: int | None) -> list[tuple[str, str, float]]:
    """``(metric, class, percent)`` rows of the official scores, named as in metrics.csv."""
    target, run = target.resolve(), run.resolve()  # the official scripts run in a scratch folder
    gt_folder = target / "gtFine" / split
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pixel = pixel_level(gt_folder, run / "semantic" / "labelIds")
        rows += [("IoU", name, 100 * value) for name, value in pixel["classScores"].items()]
        rows.append(("mIoU", "all", 100 * pixel["averageScoreClasses"]))
        if (run / "instance" / "official").is_dir():
            size = scaled_min_region_size(gt_folder) if min_region_size is None else min_region_size
            averages = instance_level(gt_folder, run / "instance" / "official", size, work)
            rows += [("AP", "all", 100 * averages["allAp"]), ("AP50", "all", 100 * averages["allAp50%"])]
            rows += [(metric, name, 100 * float(np.squeeze(scores[key])))
                     for name, scores in averages["classes"].items() for metric, key in (("AP", "ap"), ("AP50", "ap50%"))]
        if (run / "panoptic" / "panoptic.json").is_file():
            result = panoptic(target / "gtFine", split, run / "panoptic", work)
            rows += [(metric.upper(), group.lower(), 100 * result[group][metric])
                     for group in ("All", "Things", "Stuff") for metric in ("pq", "sq", "rq")]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, type=Path, help="the target dataset's root (Cityscapes layout)")
    parser.add_argument("--run", required=True, type=Path, help="a run's folder, e.g. results/round1")
    parser.add_argument("--split", default="val", help="the evaluated split (default: val)")
    parser.add_argument("--min-region-size", type=int,
                        help="pixels; default: the official 100 at 1024x2048 scaled by image area")
    parser.add_argument("--metrics", type=Path, help="metrics.csv to compare with (default: <run>/../summary/metrics.csv)")
    args = parser.parse_args(argv)
    rows = official_rows(args.target, args.run, args.split, args.min_region_size)
    metrics = args.metrics or args.run.parent / "summary" / "metrics.csv"
    ours = {}
    if metrics.is_file():
        table = pd.read_csv(metrics, dtype={"run": str})
        ours = {(m, c): v for r, m, c, v in zip(table["run"], table["metric"], table["class"], table["value"])
                if r == args.run.name}
    worst = 0.0
    print(f"{'metric':6s} {'class':14s} {'official':>9s} {'metrics.csv':>12s}")
    for metric, name, value in rows:
        mine = ours.get((metric, name), float("nan"))
        if not (math.isnan(value) and math.isnan(mine)) and (metric, name) in ours:
            worst = max(worst, abs(value - mine) if not (math.isnan(value) or math.isnan(mine)) else math.inf)
        print(f"{metric:6s} {name:14s} {value:9.4f} {mine:12.4f}")
    if not ours:
        print(f"(no rows of round {label} in {metrics} to compare with)")
        return 0
    print(f"largest difference: {worst:.6f} percentage points")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
