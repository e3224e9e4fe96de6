"""Time selfpanoptic's panoptic evaluator against the official Cityscapes one on the same files.

    python benchmarks/bench_panoptic_eval.py                       # toy val GT, round-0 predictions
    python benchmarks/bench_panoptic_eval.py --perturb             # toy val GT vs a perturbed copy
    python benchmarks/bench_panoptic_eval.py --scale 8 --limit 20  # 20 images at 1024x2048
    python benchmarks/bench_panoptic_eval.py --gt-json-file G.json --prediction-json-file P.json

The prediction defaults to ``results/round0/panoptic/panoptic.json`` + ``.../panoptic/panoptic/``
(what ``selfpanoptic fuse-panoptic --out results/round0/panoptic`` writes). When that default does
not exist, or with ``--perturb`` or ``--scale``/``--limit``, the prediction is a perturbed copy of
the ground truth written to a temporary folder: segments dropped, eroded, shifted, merged, split
and relabelled, plus spurious ones, with random ids.

Wall-clock: ours (``evaluate_panoptic_folders``: one process, PNGs decoded by a few threads) best
of ``--runs``; the official ``evaluatePanoptic`` (a multiprocessing pool over all cores, stdout
silenced) best of ``--official-runs``. Single-core cost, less sensitive to a busy machine: CPU
seconds of ours with ``num_workers=0`` and of the official per-core worker
(``pq_compute_single_core``) run in this process over all images. All four give PQ/SQ/RQ for All/Things/Stuff and per class; the script checks
they agree to 1e-9 and exits with status 1 if not.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from selfpanoptic.formats.panoptic_png import ids_to_rgb, read_panoptic_png
from selfpanoptic.metrics.panoptic_files import evaluate_panoptic_folders

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GT_JSON = ROOT / "data/toy/cityscapes-like/gtFine/cityscapes_panoptic_val.json"
DEFAULT_PRED_JSON = ROOT / "results/round0/panoptic/panoptic.json"
DEFAULT_PRED_FOLDER = ROOT / "results/round0/panoptic/panoptic"


def perturb_image(rng: np.random.Generator, gt: np.ndarray, segments: list[dict], categories: list[int],
                  things: set[int]) -> tuple[np.ndarray, list[dict]]:
    """A plausible imperfect prediction of one GT segment-id map."""
    pred = gt.copy()
    category = {int(s["id"]): int(s["category_id"]) for s in segments}
    fresh = [1 << 23]

    def new_segment(cat: int) -> int:
        fresh[0] += 1
        category[fresh[0]] = cat
        return fresh[0]

    height, width = gt.shape
    jitter = rng.random(gt.shape) < 0.05  # boundary noise
    shifted = np.roll(gt, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
    pred[jitter] = shifted[jitter]
    for s in segments:
        sid = int(s["id"])
        mask = pred == sid
        if not mask.any():
            continue
        op = rng.random()
        if op < 0.10:  # drop -> void
            pred[mask] = 0
        elif op < 0.25:  # erode by one pixel (4-neighbourhood)
            inner = mask.copy()
            inner[1:] &= mask[:-1]
            inner[:-1] &= mask[1:]
            inner[:, 1:] &= mask[:, :-1]
            inner[:, :-1] &= mask[:, 1:]
            pred[mask & ~inner] = 0
        elif op < 0.35:  # shift
            pred[mask] = 0
            pred[np.roll(mask, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))] = sid
        elif op < 0.45:  # split along x
            xs = np.nonzero(mask)[1]
            pred[mask & (np.arange(width)[None, :] > np.median(xs))] = new_segment(category[sid])
        elif op < 0.52:  # relabel
            category[sid] = int(rng.choice(categories))
    by_category: dict[int, list[int]] = {}
    for s in segments:  # merge pairs of same-category things
        if s["category_id"] in things and not s.get("iscrowd", 0):
            by_category.setdefault(int(s["category_id"]), []).append(int(s["id"]))
    for members in by_category.values():
        if len(members) >= 2 and rng.random() < 0.5:
            pred[pred == members[1]] = members[0]
    for _ in range(3):  # spurious segments
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        pred[y:y + int(rng.integers(2, 12)), x:x + int(rng.integers(2, 20))] = new_segment(int(rng.choice(categories)))
    present, inverse = np.unique(pred, return_inverse=True)
    new_ids = rng.choice(np.arange(1, 1 << 24), size=present.size, replace=False)
    new_ids[present == 0] = 0
    out = new_ids[inverse.reshape(pred.shape)]
    info = [{"id": int(n), "category_id": category[int(o)]} for o, n in zip(present, new_ids) if o != 0]
    return out, info


def make_scaled_gt(gt_json_file: Path, gt_folder: Path, out_dir: Path, scale: int, limit: int | None) -> tuple[Path, Path]:
    """Copy of the GT (first ``limit`` images) enlarged ``scale`` times (nearest neighbour)."""
    gt = json.loads(gt_json_file.read_text())
    annotations = gt["annotations"][:limit] if limit else gt["annotations"]
    keep = {ann["image_id"] for ann in annotations}
    folder = out_dir / "gt"
    folder.mkdir(parents=True, exist_ok=True)
    for ann in annotations:
        ids = read_panoptic_png(gt_folder / ann["file_name"])
        ids = np.repeat(np.repeat(ids, scale, axis=0), scale, axis=1)
        Image.fromarray(ids_to_rgb(ids)).save(folder / ann["file_name"], compress_level=1)
        for s in ann["segments_info"]:
            s["area"] = int(s["area"]) * scale * scale
            s["bbox"] = [int(v) * scale for v in s["bbox"]]
    images = [dict(im, width=im["width"] * scale, height=im["height"] * scale)
              for im in gt.get("images", []) if im["id"] in keep]
    path = out_dir / "gt.json"
    path.write_text(json.dumps(dict(gt, images=images, annotations=annotations)))
    return path, folder


def make_perturbed_prediction(gt_json_file: Path, gt_folder: Path, out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    gt = json.loads(gt_json_file.read_text())
    categories = [int(c["id"]) for c in gt["categories"]]
    things = {int(c["id"]) for c in gt["categories"] if c["isthing"]}
    rng = np.random.default_rng(seed)
    folder = out_dir / "prediction"
    folder.mkdir(parents=True, exist_ok=True)
    annotations = []
    for ann in gt["annotations"]:
        ids = read_panoptic_png(gt_folder / ann["file_name"])
        pred, info = perturb_image(rng, ids, ann["segments_info"], categories, things)
        name = f"{ann['image_id']}_panoptic.png"
        Image.fromarray(ids_to_rgb(pred)).save(folder / name, compress_level=1)
        annotations.append({"image_id": ann["image_id"], "file_name": name, "segments_info": info})
    pred_json = out_dir / "prediction.json"
    pred_json.write_text(json.dumps({"images": gt.get("images", []), "annotations": annotations,
                                     "categories": gt["categories"]}))
    return pred_json, folder


def compare(ours: dict, theirs: dict, names: dict[int, str]) -> float:
    """Largest absolute difference between the two result sets (raises if a count differs)."""
    worst = 0.0
    for group in ("All", "Things", "Stuff"):
        if ours[group]["n"] != theirs[group]["n"]:
            raise AssertionError(f"{group}: n {ours[group]['n']} != {theirs[group]['n']}")
        for key in ("pq", "sq", "rq"):
            worst = max(worst, abs(ours[group][key] - theirs[group][key]))
    for label, r in theirs["per_class"].items():
        for key in ("pq", "sq", "rq"):
            worst = max(worst, abs(ours["per_class"][names[label]][key] - r[key]))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt-json-file", type=Path, default=DEFAULT_GT_JSON)
    parser.add_argument("--gt-folder", type=Path, default=None, help="default: the GT JSON path without .json")
    parser.add_argument("--prediction-json-file", type=Path, default=None,
                        help=f"default: {DEFAULT_PRED_JSON.relative_to(ROOT)} (perturbed GT if missing)")
    parser.add_argument("--prediction-folder", type=Path, default=None,
                        help="default: the prediction JSON path without .json")
    parser.add_argument("--perturb", action="store_true", help="evaluate a perturbed copy of the GT")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbation")
    parser.add_argument("--scale", type=int, default=1,
                        help="enlarge the GT this many times (nearest) first, e.g. 8: toy 128x256 -> 1024x2048")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N GT images")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of ours (best is reported)")
    parser.add_argument("--official-runs", type=int, default=2, help="timed runs of the official evaluator")
    args = parser.parse_args(argv)

    gt_json = args.gt_json_file
    gt_folder = args.gt_folder or gt_json.with_suffix("")
    if not gt_json.is_file() or not gt_folder.is_dir():
        parser.error(f"ground truth not found: {gt_json} / {gt_folder}")

    with tempfile.TemporaryDirectory(prefix="bench_panoptic_") as tmp:
        tmp = Path(tmp)
        if args.scale != 1 or args.limit:
            gt_json, gt_folder = make_scaled_gt(gt_json, gt_folder, tmp, args.scale, args.limit)
            if args.prediction_json_file is None and args.prediction_folder is None:
                args.perturb = True
        pred_json, pred_folder = args.prediction_json_file, args.prediction_folder
        if pred_json is None and pred_folder is None and not args.perturb:
            if DEFAULT_PRED_JSON.is_file() and DEFAULT_PRED_FOLDER.is_dir():
                pred_json, pred_folder = DEFAULT_PRED_JSON, DEFAULT_PRED_FOLDER
            else:
                print(f"no prediction at {DEFAULT_PRED_JSON.relative_to(ROOT)}: using a perturbed copy of the GT")
                args.perturb = True
        if args.perturb:
            pred_json, pred_folder = make_perturbed_prediction(gt_json, gt_folder, tmp, args.seed)
        else:
            if pred_json is None:
                parser.error("--prediction-json-file is required with --prediction-folder")
            pred_folder = pred_folder or pred_json.with_suffix("")
            if not pred_json.is_file() or not pred_folder.is_dir():
                parser.error(f"prediction not found: {pred_json} / {pred_folder}")

        gt_data = json.loads(gt_json.read_text())
        names = {int(c["id"]): c["name"] for c in gt_data["categories"]}
        n_images = len(gt_data["annotations"])
        sizes = {(im.get("height"), im.get("width")) for im in gt_data.get("images", [])}

        ours_times, ours = [], None
        for _ in range(args.runs):
            began = time.perf_counter()
            ours = evaluate_panoptic_folders(gt_json, gt_folder, pred_json, pred_folder)
            ours_times.append(time.perf_counter() - began)

        from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as official

        theirs_times, theirs = [], None
        for _ in range(args.official_runs):
            began = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                theirs = official.evaluatePanoptic(str(gt_json), str(gt_folder), str(pred_json), str(pred_folder),
                                                   str(tmp / "official_results.json"))
            theirs_times.append(time.perf_counter() - began)

        # single-core cost: CPU seconds of ours without reader threads vs the official per-core
        # worker run in this process over all images (no pool)
        ours_cpu, serial = [], None
        for _ in range(args.runs):
            began = time.process_time()
            serial = evaluate_panoptic_folders(gt_json, gt_folder, pred_json, pred_folder, num_workers=0)
            ours_cpu.append(time.process_time() - began)
        theirs_cpu, single = [], None
        for _ in range(args.official_runs):
            began = time.process_time()
            gt_all = json.loads(gt_json.read_text())  # JSON reading counts, as in both evaluators
            pred_by_id = {a["image_id"]: a for a in json.loads(pred_json.read_text())["annotations"]}
            categories = {c["id"]: c for c in gt_all["categories"]}
            pairs = [(a, pred_by_id[a["image_id"]]) for a in gt_all["annotations"]]
            with contextlib.redirect_stdout(io.StringIO()):
                stat = official.pq_compute_single_core(0, pairs, str(gt_folder), str(pred_folder), categories)
            single = official.average_pq(stat, categories)
            theirs_cpu.append(time.process_time() - began)

    diff = max(compare(ours, theirs, names), compare(serial, theirs, names), compare(ours, single, names))
    t_ours, t_theirs = min(ours_times), min(theirs_times)
    c_ours, c_theirs = min(ours_cpu), min(theirs_cpu)
    print(f"{n_images} images {sorted(sizes)} | prediction: {'perturbed GT' if args.perturb else pred_json}")
    print(f"cores: {multiprocessing.cpu_count()} (official: a pool of that many processes; ours: one process)")
    print()
    print(f"{'evaluator':<36s} {'seconds':>8s} {'img/s':>8s} {'PQ':>8s} {'SQ':>8s} {'RQ':>8s}")
    rows = (
        (f"selfpanoptic, wall (best of {args.runs})", t_ours, ours),
        (f"official, wall (best of {args.official_runs})", t_theirs, theirs),
        (f"selfpanoptic, 1 thread, CPU s", c_ours, serial),
        (f"official, 1 process, CPU s", c_theirs, single),
    )
    for label, t, r in rows:
        a = r["All"]
        print(f"{label:<36s} {t:8.3f} {n_images / t:8.1f} {100 * a['pq']:8.3f} {100 * a['sq']:8.3f} {100 * a['rq']:8.3f}")
    print()
    print(f"speed-up: wall {t_theirs / t_ours:.2f}x, single-core CPU {c_theirs / c_ours:.2f}x   "
          f"PQ-dagger (ours): {100 * ours['PQ_dagger']:.3f}")
    agree = diff <= 1e-9
    print(f"max |difference| over All/Things/Stuff and per-class PQ/SQ/RQ: {diff:.2e} "
          f"-> {'agree' if agree else 'DISAGREE'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
