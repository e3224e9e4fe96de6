"""Peak memory of the stages that read a split's per-image maps, at two split sizes: it must not grow with the images.

    python benchmarks/bench_stage_memory.py                                    # 16 and 64 images of 256x512
    python benchmarks/bench_stage_memory.py --images 16 32 --height 128 --width 256 --stages selftrain_instance

For each split size it writes a synthetic target cache (``bench_training.synthetic_cache``: blocky
labels, car and person instances), a semantic prediction (the cache's labels) and an instance
prediction (the cache's instances) of its images, and random-weight models of config.yaml's toy
architectures; then it runs each stage command (``selfpanoptic <stage> ...``, on the CPU, with
``--steps`` training steps) in a fresh child process and reads the child's peak resident set size
(``os.wait4``: ``ru_maxrss`` of the child and any worker it started). The growth per image is
(peak at the larger split - peak at the smaller) / (difference in images); the last column is,
for comparison, what reading the split whole would hold per image (whole-split arrays: the guiding
instance maps read and converted to int32, 8 bytes a pixel; the semantic labels, float16
confidence and its float32 copy, 7 bytes a pixel).

Stages: ``pseudo_semantic`` (guided by round r-1's predicted instances), ``pseudo_semantic_gt``
(by half of the ground-truth instances), ``pseudo_semantic_aligned`` (predicted guidance and
``alignment`` 0.5 towards the target cache's class shares: its scratch file holds every class's
fused probability, where the others keep only each pixel's maximum), ``selftrain_semantic`` (predicted guidance),
``selftrain_instance``, and, for comparison, ``predict_semantic`` and ``pseudo_instance``. No source
cache and no objectness classifier (their memory is bounded by their own settings, not by the
target split). Dataset caches under 1 GiB are held in memory by design (``DatasetCache``'s
``preload_mb``): a bounded cost, but at these small sizes it would show as growth per image, so the
children read every cache per image, as a full-size split is read (``--preload``: the default).
The children run with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB, so that a freed large
buffer goes back to the system at once and the peak follows the memory in use, not how glibc
happened to reuse its heap (``--default-malloc``: glibc's dynamic threshold, which adds tens of MiB
of noise). Both splits must hold at least two batches of the predicting stages (8 images each): a
split of one batch, or of a smaller one, would show the cost of a second batch as growth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

STAGES = ("pseudo_semantic", "pseudo_semantic_gt", "selftrain_semantic", "selftrain_instance", "predict_semantic",
          "pseudo_instance", "pseudo_semantic_aligned")
DEFAULT_STAGES = STAGES[:4]
BATCH = 8
"""Images per batch of the predicting stages (pseudo-semantic, predict-semantic, pseudo-instance)."""
HELD_BEFORE = {"pseudo_semantic": 8, "pseudo_semantic_gt": 8, "pseudo_semantic_aligned": 8, "selftrain_semantic": 8,
               "selftrain_instance": 7, "predict_semantic": 0, "pseudo_instance": 0}
"""Bytes per pixel of the whole-split arrays each stage would hold if it read the split whole (see the module doc)."""


def write_inputs(folder: Path, count: int, height: int, width: int) -> dict[str, Path]:
    """A split of ``count`` synthetic images: its cache, a semantic and an instance prediction."""
    from bench_training import synthetic_cache

    from selfpanoptic.classes import class_id
    from selfpanoptic.intermediates import DatasetCache, InstancePrediction, SemanticPrediction

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"cache": synthetic_cache(folder / "target.h5", count, height, width, seed=2),
             "semantic": folder / "semantic.h5", "instances": folder / "instances.h5"}
    with DatasetCache.open(paths["cache"], preload_mb=0) as cache, \
            SemanticPrediction.create(paths["semantic"], cache.image_ids, (height, width), {}) as sem, \
            InstancePrediction.create(paths["instances"], cache.image_ids, (height, width), {}) as inst:
        rows = []
        for i in range(count):
            labels, instances = cache.read("labels", i), cache.read("instances", i)
            sem["labels"][i], inst["instances"][i] = labels, instances
            sem["confidence"][i] = np.full(labels.shape, 0.9, dtype=np.float16)
            ids, areas = np.unique(instances[instances > 0], return_counts=True)
            rows += [(i, int(k), class_id("car"), int(a)) for k, a in zip(ids, areas)]
        InstancePrediction.write_segments(inst, rows, [0.9] * len(rows))
    return paths


def write_models(folder: Path, height: int, width: int) -> dict[str, Path]:
    """Random-weight model files of config.yaml's toy semantic and instance architectures (group ``vehicles``: car)."""
    import torch
    from bench_training import load_preset

    from selfpanoptic.models import build_instance_model, build_semantic_model
    from selfpanoptic.train.engine import save_model_file

    config = load_preset("toy")
    torch.manual_seed(0)
    sem_spec, inst_spec, loss = config["semantic"]["model"], config["instance"]["model"], config["instance"]["loss"]
    paths = {"semantic_model": folder / "semantic.pt", "instance_model": folder / "instance.pt"}
    save_model_file(paths["semantic_model"], build_semantic_model(sem_spec), "semantic", sem_spec, (height, width))
    save_model_file(paths["instance_model"], build_instance_model(inst_spec), "instance", inst_spec, (height, width),
                    {"group": "vehicles", "classes": ["car"], "delta_v": loss["delta_v"], "delta_d": loss["delta_d"]})
    return paths


def stage_settings(height: int, width: int, steps: int, gt_fraction: float, alignment: float = 0.0) -> dict[str, str]:
    """The stages' settings as JSON: a few steps on half-size crops, no source, no objectness
    (``alignment`` > 0: pseudo-semantic's class shares come from the target cache itself)."""
    from selfpanoptic.config import validate_config

    train = {"steps": steps, "batch_size": 2, "crop": [height // 2, width // 2], "checkpoint_every": steps + 1,
             "tensorboard": False, "log_images_every": 0}
    config = validate_config({
        "selftrain": {
            "semantic": {"train": train, "source_batch_size": 0, "alignment": alignment, "rare_class_temperature": 0.0,
                         "class_mix": False},
            "instance": {"train": train, "min_size": 4, "min_confidence": 0.0, "objectness": {"enabled": False}},
            "guidance": {"from_round": 2, "gt_instance_fraction": gt_fraction},
        },
        "instance": {"groups": {"vehicles": ["car"]}},
    })
    config["selftrain"].pop("rounds")
    return {"selftrain": json.dumps(config["selftrain"]), "instance": json.dumps(config["instance"])}


def stage_command(stage: str, inputs: dict[str, Path], out: Path, settings: dict[str, dict[str, str]]) -> list[str]:
    """The ``selfpanoptic`` arguments of one measurement (``settings``: :func:`stage_settings` by guidance)."""
    mode = {"pseudo_semantic_gt": "ground_truth", "pseudo_semantic_aligned": "aligned"}.get(stage, "predicted")
    chosen = settings[mode]
    data = ["--data", str(inputs["cache"])]
    selftrain = ["--selftrain-settings", chosen["selftrain"]]
    if stage.startswith("pseudo_semantic"):
        source = ["--source", str(inputs["cache"])] if stage == "pseudo_semantic_aligned" else []
        return ["pseudo-semantic", "--model", str(inputs["semantic_model"]), *data, "--round", "2", *source,
                "--guidance-instances", str(inputs["instances"]), "--out", str(out / "pseudo.h5"), *selftrain]
    if stage == "selftrain_semantic":
        return ["selftrain-semantic", "--model", str(inputs["semantic_model"]), *data, "--round", "2",
                "--guidance-instances", str(inputs["instances"]), "--out", str(out / "model.pt"),
                "--work-dir", str(out / "work"), *selftrain]
    if stage == "selftrain_instance":
        return ["selftrain-instance", "--model", str(inputs["instance_model"]), *data, "--semantic",
                str(inputs["semantic"]), "--group", "vehicles", "--round", "1", "--out", str(out / "model.pt"),
                "--work-dir", str(out / "work"), *selftrain, "--instance-settings", chosen["instance"]]
    if stage == "predict_semantic":
        return ["predict-semantic", "--model", str(inputs["semantic_model"]), *data, "--out", str(out / "pred.h5")]
    return ["pseudo-instance", "--models", str(inputs["instance_model"]), "--semantic", str(inputs["semantic"]), *data,
            "--out", str(out / "pseudo.h5"), *selftrain, "--instance-settings", chosen["instance"]]


def peak_rss_mib(command: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run ``command`` as a child process; its peak resident set size in MiB (its workers' included)."""
    with open(log, "w") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed ({child.returncode}):\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def run_stage(argv: list[str]) -> int:
    """The child: one ``selfpanoptic`` command, dataset caches read per image unless ``--preload`` comes first."""
    if argv[:1] == ["--preload"]:
        argv = argv[1:]
    else:
        from selfpanoptic.intermediates import DatasetCache

        DatasetCache.__init__.__defaults__ = (0,)  # preload_mb: read per image, as a full-size split is
    from selfpanoptic.cli import main as selfpanoptic

    return selfpanoptic(argv)


def measure(args: argparse.Namespace, folder: Path) -> dict[str, list[float]]:
    """Peak MiB of every stage at every split size, ``{stage: [peak per size]}``."""
    models = write_models(folder, args.height, args.width)
    settings = {mode: stage_settings(args.height, args.width, args.steps, fraction, alignment)
                for mode, fraction, alignment in (("predicted", 0.0, 0.0), ("ground_truth", 0.5, 0.0),
                                                  ("aligned", 0.0, 0.5))}
    compute = ["--device", "cpu", "--threads", str(args.threads), "--quiet"]
    env = None if args.default_malloc else {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    peaks: dict[str, list[float]] = {stage: [] for stage in args.stages}
    for count in args.images:
        print(f"writing a split of {count} images of {args.height}x{args.width} ...", file=sys.stderr, flush=True)
        inputs = {**write_inputs(folder / f"split{count}", count, args.height, args.width), **models}
        for stage in args.stages:
            out = folder / f"split{count}" / stage
            out.mkdir()
            preload = ["--preload"] if args.preload else []
            command = [sys.executable, str(Path(__file__).resolve()), "--stage", *preload,
                       *stage_command(stage, inputs, out, settings), *compute]
            peaks[stage].append(peak_rss_mib(command, out / "log.txt", env))
            print(f"  {stage}: {peaks[stage][-1]:.0f} MiB", file=sys.stderr, flush=True)
    return peaks


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--stage"]:
        return run_stage(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs=2, default=[16, 64], metavar=("SMALL", "LARGE"),
                        help=f"images of the two splits, each at least {2 * BATCH} (default 16 64)")
    parser.add_argument("--height", type=int, default=256, help="working height of the synthetic split (default 256)")
    parser.add_argument("--width", type=int, default=512, help="working width (default 512)")
    parser.add_argument("--steps", type=int, default=1, help="training steps of the self-training stages (default 1)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(DEFAULT_STAGES))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each stage (default 1)")
    parser.add_argument("--preload", action="store_true", help="hold dataset caches under 1 GiB in memory (the default "
                        "of the stages; shows as growth at small sizes)")
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's dynamic mmap threshold "
                        "(noisier peaks; by default the children fix it at 128 KiB)")
    parser.add_argument("--json", type=Path, help="also write the peaks here")
    args = parser.parse_args(argv)
    small, large = sorted(args.images)
    if small == large or small < 2 * BATCH:
        parser.error(f"--images needs two different split sizes of at least {2 * BATCH} images: two batches of "
                     f"the predicting stages (a split of one batch would show the second batch's cost as growth)")
    args.images = [small, large]
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_training's synthetic inputs
    with tempfile.TemporaryDirectory(prefix="bench-stage-memory-") as tmp:
        peaks = measure(args, Path(tmp))
    map_mib = args.height * args.width / 2**20
    print(f"peak resident memory (MiB), one child process per cell: {args.height}x{args.width} images, CPU, "
          f"{args.threads} thread(s), {args.steps} training step(s), caches "
          f"{'preloaded under 1 GiB' if args.preload else 'read per image'}, "
          f"{'glibc default malloc' if args.default_malloc else 'MALLOC_MMAP_THRESHOLD_=128 KiB'}")
    print(f"| stage | {small} images | {large} images | growth MiB/image | whole-split read, MiB/image |")
    print("|---|---:|---:|---:|---:|")
    for stage, (low, high) in peaks.items():
        print(f"| {stage} | {low:.0f} | {high:.0f} | {(high - low) / (large - small):+.3f} "
              f"| {HELD_BEFORE[stage] * map_mib:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"images": [small, large], "size": [args.height, args.width],
                                         "preload": args.preload, "peaks_mib": peaks}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
