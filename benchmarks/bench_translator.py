"""Training and rendering speed of the label-to-image translator (SPADE generator + discriminator).

    python benchmarks/bench_translator.py                         # toy default (64x128), this machine's device
    python benchmarks/bench_translator.py --size 512 1024 --batch 4 --steps 10 --device cuda
    python benchmarks/bench_translator.py --json out.json

Measures, with the stage's own code:

* **train images/s**: the translator's training step (``selfpanoptic.train.translator``: crops of
  a cache and a label map, one discriminator update, the generator's hinge + feature-matching +
  pyramid-L1 loss) driven by the engine, steps after ``--warmup``; and the **train time** the
  configured ``translation.train.steps`` take at that rate;
* **translate images/s**: :func:`~selfpanoptic.translation.translate_labels` over whole label
  maps in batches of ``translation.batch_size`` (what translate-source does, without the PNG
  writing);
* parameters of the generator and the discriminator.

The cache is synthetic (``bench_training.synthetic_cache``: smooth random images, blocky labels);
the settings are the config's ``translation`` section (``--config`` to take another file's).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from bench_training import in_stage_rate, synchronize, synthetic_cache
from selfpanoptic.config import validate_config
from selfpanoptic.inference import batches
from selfpanoptic.intermediates import DatasetCache
from selfpanoptic.models import build_translator
from selfpanoptic.settings import TranslationSettings
from selfpanoptic.train.engine import train
from selfpanoptic.train.translator import Discriminator, translator_step
from selfpanoptic.translation import translate_labels

ROOT = Path(__file__).resolve().parents[1]


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml", help="config whose translation section is measured")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="image size (default: the config's data.height and data.width)")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default: translation.train.batch_size)")
    parser.add_argument("--steps", type=int, default=10, help="measured training steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="steps not measured (default 3)")
    parser.add_argument("--images", type=int, default=32, help="images in the synthetic cache (default 32)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    config = validate_config(yaml.safe_load(args.config.read_text()))
    section = config["translation"]
    height, width = args.size or (config["data"]["height"], config["data"]["width"])
    train_settings = {**section["train"], "crop": [height, width], "steps": args.warmup + args.steps,
                      "checkpoint_every": args.warmup + args.steps + 1, "tensorboard": False}
    if args.batch:
        train_settings["batch_size"] = args.batch
    section = {**section, "train": train_settings}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory(prefix="bench-translator-") as tmp:
        cache_path = synthetic_cache(Path(tmp) / "target.h5", args.images, height, width)
        torch.manual_seed(0)
        generator = build_translator(section["generator"])
        typed = TranslationSettings.from_config(section)
        discriminator = Discriminator(typed, device)
        with DatasetCache.open(cache_path) as cache:
            step = translator_step(cache, lambda i: cache.read("labels", i), typed, discriminator, device)
            train(generator, step, typed.train, Path(tmp) / "work", "bench", device, progress=False,
                  extra_state={"discriminator": discriminator})
            train_rate, _ = in_stage_rate(Path(tmp) / "work", args.warmup)
            generator.eval()
            labels = cache["labels"][()]
            translate_labels(generator, labels[: section["batch_size"]], device)  # warm-up
            synchronize(device)
            began = time.perf_counter()
            for idx in batches(len(labels), section["batch_size"]):
                translate_labels(generator, labels[idx.start : idx.stop], device)
            synchronize(device)
            translate_rate = len(labels) / (time.perf_counter() - began)
    steps = config["translation"]["train"]["steps"]
    figures = {
        "device": name, "size": [height, width], "batch": train_settings["batch_size"],
        "generator_parameters": parameters(generator), "discriminator_parameters": parameters(discriminator.net),
        "train_images_per_s": train_rate, "train_steps_per_s": train_rate / train_settings["batch_size"],
        "configured_steps": steps, "train_minutes": steps * train_settings["batch_size"] / train_rate / 60.0,
        "translate_images_per_s": translate_rate,
    }
    print(f"device: {name}; {height}x{width}, batch {figures['batch']}")
    print("| generator params | discriminator params | train img/s | train steps/s | "
          f"{steps} steps (min) | translate img/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {figures['generator_parameters'] / 1e6:.2f} M | {figures['discriminator_parameters'] / 1e6:.2f} M "
          f"| {train_rate:.1f} | {figures['train_steps_per_s']:.2f} | {figures['train_minutes']:.1f} "
          f"| {translate_rate:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
