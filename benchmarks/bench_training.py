"""How busy the training stages keep the device: the real stage code against a pure loop of the same model.

    python benchmarks/bench_training.py                              # toy default, this machine's device
    python benchmarks/bench_training.py --preset real --steps 20     # the real-data preset's models, 512x1024
    python benchmarks/bench_training.py --preset daformer --steps 20 # MiT-B5 + DAFormer head, 512x1024
    python benchmarks/bench_training.py --stages pretrain_semantic --workers 0 4 --json out.json

For every stage (pretrain_semantic, pretrain_instance, selftrain_semantic, selftrain_instance,
predict_semantic) it measures:

* **in-stage images/s**: the stage's own training step (``selfpanoptic.train.*``) driven by the
  engine (``selfpanoptic.train.engine.train``: batches read from an HDF5 dataset cache, cropped
  and augmented, prepared by ``--workers`` processes, copied, autocast, logged), steps after
  ``--warmup``; for prediction, the stage's batch loop (cache read + ``predict_semantic_batch``);
* **pure-loop images/s**: the same model, optimiser, autocast, batch and crop on random data that
  stays on the device (forward + backward + step; prediction: forward only);
* their **ratio**, the one number that judges the data path and the step's extra work on any
  device (on the CPU too);
* **FLOPs per image** (``torch.utils.flop_counter``, forward + backward for training) and the
  **model FLOP utilisation** of both loops against ``--peak-tflops``: by default a stated figure
  for known GPUs (dense bf16 / fp16 tensor-core peak) or, on the CPU, the float32 matrix-product
  throughput measured here.

Images per step count every image the student trains on: for semantic self-training the views
of the target images plus the source batch. Self-training steps do real work the pure loop does
not (the teacher's or EMA network's passes, pseudo-labels, clustering), so their ratio is below
the pretraining stages' by design.

The caches are synthetic (smooth random images, blocky labels and instances) and written to a
temporary folder; ``--preset real`` reads them per image from disk as a full-size dataset would be
(``--preload`` to hold them in memory). Models start from random weights (no download).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode

from selfpanoptic.classes import NUM_CLASSES, class_id
from selfpanoptic.config import validate_config
from selfpanoptic.h5io import atomic_h5, create_stack, write_strings
from selfpanoptic.inference import batches, predict_semantic_batch
from selfpanoptic.intermediates import DatasetCache
from selfpanoptic.models import build_instance_model, build_semantic_model
from selfpanoptic.pseudo.teacher import frozen_copy
from selfpanoptic.pseudo.thresholds import ClassPrior, initial_prior
from selfpanoptic.stages._guidance import source_shares
from selfpanoptic.settings import (InstanceLossSettings, SelfInstanceSettings, SelfSemanticSettings,
                                   TrainSettings)
from selfpanoptic.train.engine import autocast_dtype, optimizer_step, prepare_model, train
from selfpanoptic.train.optim import build_optimizer
from selfpanoptic.train.instance import instance_step
from selfpanoptic.train.self_instance import SelfInstanceData, self_instance_step
from selfpanoptic.train.self_semantic import SelfSemanticData, self_semantic_step
from selfpanoptic.train.semantic import semantic_step

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("pretrain_semantic", "pretrain_instance", "selftrain_semantic", "selftrain_instance", "predict_semantic")
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0, "T4": 65.0}
"""Dense bf16/fp16 tensor-core peak in TFLOP/s (vendor data sheets, without sparsity), by device-name substring."""


REAL_PRESETS = {"real": "synthia-gta-cityscapes.yaml", "daformer": "daformer-synthia-cityscapes.yaml"}
"""``--preset`` -> the real-data preset in configs/ laid over config.yaml (models, optimisers, crops)."""


def load_preset(name: str) -> dict:
    """The validated config of a preset: ``toy`` (config.yaml), or a real-data preset of :data:`REAL_PRESETS`
    on top of it at 512x1024."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    if name in REAL_PRESETS:
        preset = yaml.safe_load((ROOT / "configs" / REAL_PRESETS[name]).read_text())
        for key, value in preset.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        config["data"] = {**config.get("data", {}), "height": 512, "width": 1024}
    config = validate_config(config)
    config["semantic"]["model"]["init"] = config["instance"]["model"]["init"] = "none"  # nothing to download
    return config


def set_train_flags(config: dict, **flags) -> None:
    """Set ``flags`` (e.g. ``channels_last``, ``compile``) in every training section's ``train`` settings."""
    sections = [config["semantic"], config["instance"], config["selftrain"]["semantic"], config["selftrain"]["instance"]]
    for section in sections:
        section["train"].update(flags)


def smooth_images(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """``(count, H, W, 3)`` uint8 images of smooth random colour fields plus mild noise (compress like photos)."""
    coarse = rng.uniform(0, 255, size=(count, 3, max(2, height // 32), max(2, width // 32))).astype(np.float32)
    up = F.interpolate(torch.from_numpy(coarse), size=(height, width), mode="bilinear", align_corners=False)
    noisy = up.numpy() + rng.normal(0, 8, size=up.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def synthetic_cache(path: Path, count: int, height: int, width: int, seed: int = 0) -> Path:
    """A dataset cache of ``count`` synthetic images with blocky trainId labels and car/person instances."""
    rng = np.random.default_rng(seed)
    block = max(8, height // 8)  # about 15 instances per image at any size, as in a street scene
    coarse = rng.integers(0, NUM_CLASSES, size=(count, height // block + 1, width // block + 1))
    labels = np.repeat(np.repeat(coarse, block, axis=1), block, axis=2)[:, :height, :width].astype(np.uint8)
    # every car or person cell of the coarse grid is one instance (about 15 per toy image)
    cells = np.arange(coarse[0].size, dtype=np.int32).reshape(coarse.shape[1:]) + 1
    cell_ids = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[:height, :width]
    things = (labels == class_id("car")) | (labels == class_id("person"))
    instances = np.where(things, cell_ids[None], 0).astype(np.int32)
    with atomic_h5(path, "dataset_cache", {"height": height, "width": width}) as h5:
        images = create_stack(h5, "images", count, (height, width, 3), np.uint8)
        for start in range(0, count, 8):
            images[start : start + 8] = smooth_images(rng, min(8, count - start), height, width)
        create_stack(h5, "labels", count, (height, width), np.uint8)[:] = labels
        create_stack(h5, "instances", count, (height, width), np.int32)[:] = instances
        write_strings(h5, "image_ids", [f"img{i}" for i in range(count)])
        write_strings(h5, "datasets", ["synthia"] * count)
    return path


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_tflops(device: torch.device, given: float | None) -> tuple[float, str]:
    """The peak the utilisation is measured against, and where the figure comes from."""
    if given:
        return given, "given (--peak-tflops)"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_TFLOPS.items():
            if key in name:
                return value, f"{name}: dense bf16 data-sheet peak"
        return float("nan"), f"{name}: unknown peak (give --peak-tflops)"
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(5):
        tick = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tick)
    return 2 * n**3 / best / 1e12, f"CPU float32 matmul measured here ({torch.get_num_threads()} threads)"


def flops_per_image(model: torch.nn.Module, crop: tuple[int, int], device: torch.device, train_step: bool) -> float:
    """FLOPs of one image: forward + backward when ``train_step``, else forward only."""
    model = copy.deepcopy(model).to(device)
    x = torch.randn(1, 3, *crop, device=device)
    with FlopCounterMode(display=False) as counter:
        if train_step:
            model.train()
            model(x).float().square().mean().backward()
        else:
            model.eval()
            with torch.no_grad():
                model(x)
    return float(counter.get_total_flops())


def pure_loop(model: torch.nn.Module, settings: dict, images: int, crop: tuple[int, int], device: torch.device,
              steps: int, warmup: int, kind: str, train_step: bool = True) -> float:
    """Images/s of the same model on random data resident on the device (no reading, no host work)."""
    typed = TrainSettings.from_config(settings)
    model = prepare_model(copy.deepcopy(model), typed, device)
    optimizer = build_optimizer(model, typed)
    dtype = autocast_dtype(typed, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    x = torch.randn(images, 3, *crop, device=device)
    labels = torch.randint(0, NUM_CLASSES, (images, *crop), device=device)
    model.train(train_step)
    for index in range(warmup + steps):
        if index == warmup:
            synchronize(device)
            began = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if not train_step:
                with torch.no_grad():
                    torch.softmax(model(x).float(), dim=1).max(dim=1)
                continue
            out = model(x).float()
            loss = F.cross_entropy(out, labels) if kind == "semantic" else out.square().mean()
        optimizer_step(loss, optimizer, scaler)
        loss.item()  # the engine reads the loss back once per step too
    synchronize(device)
    return images * steps / (time.perf_counter() - began)


def in_stage_rate(work_dir: Path, warmup: int) -> tuple[float, float]:
    """Images/s over the steps after ``warmup`` and the mean seconds a step waited for its batch.

    Read from the engine's log: each row's ``images_per_s`` is the step's images over its wall time
    (waiting for the batch included). A stage trains on the same number of images every step, so
    the rate over the steps is the harmonic mean of the rows' rates.
    """
    with open(work_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))[warmup:]
    rates = np.array([float(r["images_per_s"]) for r in rows])
    waits = np.array([float(r["data_s"]) for r in rows])
    return len(rates) / float(np.sum(1.0 / rates)), float(waits.mean())


class Bench:
    """The caches, config and device shared by the stage measurements."""

    def __init__(self, args: argparse.Namespace, folder: Path):
        self.args, self.folder = args, folder
        self.device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if args.device == "auto" else args.device))
        self.config = load_preset(args.preset)
        set_train_flags(self.config, channels_last=args.channels_last, compile=args.compile)
        height, width = self.config["data"]["height"], self.config["data"]["width"]
        count = args.images
        print(f"writing synthetic caches: {count} images of {height}x{width} ...", file=sys.stderr, flush=True)
        self.source_path = synthetic_cache(folder / "source.h5", count, height, width, seed=1)
        self.target_path = synthetic_cache(folder / "target.h5", count, height, width, seed=2)
        self.preload_mb = 1024 if (args.preload or args.preset == "toy") else 0

    def open(self, path: Path) -> DatasetCache:
        return DatasetCache.open(path, preload_mb=self.preload_mb)

    def run_engine(self, name: str, model, step, settings: dict, workers: int, extra_state=None) -> tuple[float, float]:
        steps = self.args.warmup + self.args.steps
        settings = {**settings, "steps": steps, "checkpoint_every": steps + 1}
        work = self.folder / f"{name}-w{workers}"
        torch.manual_seed(0)
        train(model, step, TrainSettings.from_config(settings), work, name, self.device, progress=False,
              extra_state=extra_state, data_workers=workers)
        return in_stage_rate(work, self.args.warmup)

    def stage(self, name: str, workers: int) -> dict:
        """One stage's measurement: model, images per step, crop, in-stage and pure images/s."""
        cfg, device = self.config, self.device
        sem_spec, inst_spec = cfg["semantic"]["model"], cfg["instance"]["model"]
        group = next(iter(cfg["instance"]["groups"].values()))
        classes = [class_id(c) for c in group]
        loss_settings = cfg["instance"]["loss"]
        st = cfg["selftrain"]
        with self.open(self.source_path) as source, self.open(self.target_path) as target:
            if name == "pretrain_semantic":
                settings, kind = cfg["semantic"]["train"], "semantic"
                model = build_semantic_model(sem_spec)
                images = settings["batch_size"]
                rate = self.run_engine(name, model, semantic_step(source, TrainSettings.from_config(settings), device), settings,
                                       workers)
            elif name == "pretrain_instance":
                settings, kind = cfg["instance"]["train"], "instance"
                model = build_instance_model(inst_spec)
                images = settings["batch_size"]
                step = instance_step(source, group, TrainSettings.from_config(settings),
                                     InstanceLossSettings.from_config(loss_settings), device)
                rate = self.run_engine(name, model, step, settings, workers)
            elif name == "selftrain_semantic":
                sem = st["semantic"]
                settings, kind = sem["train"], "semantic"
                model = build_semantic_model(sem_spec)
                teacher = frozen_copy(model).to(device)
                prior = ClassPrior(initial_prior(NUM_CLASSES))
                use_source = source if sem["source_batch_size"] > 0 or sem["class_mix"] else None
                images = settings["batch_size"] * sem["views"] + (sem["source_batch_size"] if use_source else 0)
                # alignment (on by default) lifts classes towards their share in the source labels
                reference = source_shares(sem["alignment"], str(self.source_path))
                step = self_semantic_step(teacher, prior, SelfSemanticData(target, use_source, reference=reference),
                                          SelfSemanticSettings.from_config(sem), device)
                rate = self.run_engine(name, model, step, settings, workers,
                                       extra_state={"teacher": teacher, "prior": prior})
            elif name == "selftrain_instance":
                inst = st["instance"]
                settings, kind = inst["train"], "instance"
                model = build_instance_model(inst_spec)
                ema = frozen_copy(model).to(device)
                semantic = np.stack([target.read("labels", i) for i in range(len(target))])
                confidence = np.full(semantic.shape, 0.95, dtype=np.float32)
                images = settings["batch_size"]
                step = self_instance_step(ema, classes, SelfInstanceData(target, semantic, confidence, source),
                                          SelfInstanceSettings.from_config(inst),
                                          InstanceLossSettings.from_config(loss_settings), device, {})
                rate = self.run_engine(name, model, step, settings, workers, extra_state={"ema": ema})
            else:  # predict_semantic: the stage's loop over a cache, batches of 8
                settings, kind = cfg["semantic"]["train"], "semantic"
                model = build_semantic_model(sem_spec).to(device).eval()
                images = 8
                rate = (self.predict_rate(model, target), 0.0)
        crop = (cfg["data"]["height"], cfg["data"]["width"]) if name == "predict_semantic" else tuple(settings["crop"])
        training = name != "predict_semantic"
        pure = pure_loop(model, settings, images, crop, device, self.args.steps, self.args.warmup, kind, training)
        flops = flops_per_image(model, crop, device, training)
        return {"stage": name, "workers": workers if training else 0, "images_per_step": images,
                "crop": list(crop), "in_stage": rate[0], "data_wait_s": rate[1], "pure": pure,
                "ratio": rate[0] / pure, "gflop_per_image": flops / 1e9}

    def predict_rate(self, model, cache: DatasetCache) -> float:
        """Images/s of the predict-semantic stage's loop (read a batch from the cache, predict it)."""
        ranges = list(batches(len(cache), 8))
        done, began = 0, None
        for index, idx in enumerate(ranges[: self.args.warmup + self.args.steps]):
            if index == self.args.warmup:
                synchronize(self.device)
                began, done = time.perf_counter(), 0
            predict_semantic_batch(model, np.stack([cache.read("images", i) for i in idx]), self.device)
            done += len(idx)
        if began is None:
            raise SystemExit(f"predict_semantic: --images {len(cache)} gives {len(ranges)} batches of 8, none after "
                             f"the {self.args.warmup} warm-up batches; give more --images or fewer --warmup")
        return done / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=["toy", *REAL_PRESETS], default="toy",
                        help="toy: config.yaml's models and sizes; real: configs/synthia-gta-cityscapes.yaml's at 512x1024 "
                        "(ResNet-101 DeepLabV2, ResNet-50 U-Net); daformer: configs/daformer-synthia-cityscapes.yaml's "
                        "(MiT-B5 with DAFormer's head and AdamW schedule)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--steps", type=int, default=10, help="measured steps per loop (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="steps not measured (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="data workers of the in-stage loop; several values give one row each "
                        "(default: 0 on the CPU, 4 on CUDA, as the workflow)")
    parser.add_argument("--images", type=int, default=32, help="images per synthetic cache (default 32)")
    parser.add_argument("--preload", action="store_true", help="hold the real preset's caches in memory")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak to measure utilisation against")
    parser.add_argument("--channels-last", action="store_true", help="train.channels_last in every stage (CUDA only)")
    parser.add_argument("--compile", action="store_true", help="train.compile in every stage (CUDA only)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        bench = Bench(args, Path(tmp))
        device = bench.device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        workers = args.workers if args.workers is not None else [4 if device.type == "cuda" else 0]
        peak, peak_source = peak_tflops(device, args.peak_tflops)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        flags = [flag for flag in ("channels_last", "compile") if getattr(args, flag)]
        print(f"device: {name}; preset {args.preset}; peak {peak:.2f} TFLOP/s ({peak_source})"
              + (f"; {', '.join(flags)}" if flags else ""))
        rows = []
        for stage in args.stages:
            for count in (workers if stage != "predict_semantic" else [0]):
                print(f"  {stage} (workers {count}) ...", file=sys.stderr, flush=True)
                row = bench.stage(stage, count)
                row["mfu_in_stage"] = row["gflop_per_image"] * row["in_stage"] / 1e3 / peak
                row["mfu_pure"] = row["gflop_per_image"] * row["pure"] / 1e3 / peak
                rows.append(row)
    header = ("| stage | workers | images/step | crop | in-stage img/s | pure img/s | ratio | data wait s/step "
              "| GFLOP/img | MFU in-stage | MFU pure |")
    print(header)
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['stage']} | {r['workers']} | {r['images_per_step']} | {r['crop'][0]}x{r['crop'][1]} "
              f"| {r['in_stage']:.1f} | {r['pure']:.1f} | {r['ratio']:.2f} | {r['data_wait_s']:.4f} "
              f"| {r['gflop_per_image']:.2f} | {100 * r['mfu_in_stage']:.1f} % | {100 * r['mfu_pure']:.1f} % |")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "preset": args.preset, "peak_tflops": peak,
                                         "peak_source": peak_source, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
