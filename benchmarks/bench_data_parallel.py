"""N data-parallel processes against one process on the same global batch: how far the weights drift.

    python benchmarks/bench_data_parallel.py --cache results/data/cache/source.h5
    python benchmarks/bench_data_parallel.py --cache results/data/cache/source.h5 --processes 2 4 --steps 20

Trains ``pretrain-semantic`` on a dataset cache with the config's semantic section (default: the
embedded default config; ``--config`` for another), ``--steps`` steps, for each optimiser of
``--optimizers``:

* one process with 1 thread (the reference);
* one process with 2 threads: float32 sums taken in another order, the noise floor of the comparison;
* ``--processes`` ranks (gloo on the CPU, 1 thread each), ``batch_size`` the same global batch.

It prints, against the reference, the largest weight difference (parameters), the share of
weights that differ by more than 1e-6, the largest batch-norm running-statistic difference, and
the largest relative difference of the logged loss over the steps, as a markdown table with the
machine and commit. A row near the noise floor means the ranks compute what one process computes;
Adam divides each gradient by its own running size, so it turns rounding in near-zero gradients
into whole steps: compare its rows with its own noise floor.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from selfpanoptic.config import validate_config
from selfpanoptic.config_sources import read_config_file


def _train(cache: Path, settings: dict, folder: Path, processes: int, threads: int) -> tuple[Path, float]:
    """Run ``pretrain-semantic`` in a child process; return the model file and the wall seconds."""
    out = folder / "model.pt"
    command = [sys.executable, "-m", "selfpanoptic", "pretrain-semantic", "--data", str(cache), "--out", str(out),
               "--work-dir", str(folder / "work"), "--semantic-settings", json.dumps(settings),
               "--processes", str(processes), "--device", "cpu", "--threads", str(threads), "--quiet"]
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out, time.perf_counter() - began


def _losses(model: Path) -> list[float]:
    with open(model.parent / "work" / "metrics.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def compare(reference: Path, other: Path) -> dict[str, float]:
    """Differences of ``other``'s weights, running statistics and loss curve from ``reference``'s."""
    a = torch.load(reference, weights_only=True)["state_dict"]
    b = torch.load(other, weights_only=True)["state_dict"]
    weights = [k for k in a if a[k].is_floating_point() and "running" not in k]
    running = [k for k in a if "running" in k and a[k].is_floating_point()]
    total = sum(a[k].numel() for k in weights)
    apart = sum(int(((a[k].double() - b[k].double()).abs() > 1e-6).sum()) for k in weights)
    loss_a, loss_b = _losses(reference), _losses(other)
    return {
        "max_weight": max((a[k].double() - b[k].double()).abs().max().item() for k in weights),
        "share_apart": apart / total,
        "max_running": max(((a[k].double() - b[k].double()).abs().max().item() for k in running), default=0.0),
        "max_loss_rel": max(abs(x - y) / abs(x) for x, y in zip(loss_a, loss_b)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="a labelled dataset cache (HDF5)")
    parser.add_argument("--config", type=Path, help="config file whose semantic section is used (default: the defaults)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd"])
    parser.add_argument("--keep", type=Path, help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args()

    base = validate_config(read_config_file(args.config) if args.config else {})["semantic"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, commit {commit}; "
          f"cache {args.cache}, {args.steps} steps, batch_size {base['train']['batch_size']}")
    print("\n| optimiser | run | wall s | max abs weight diff | weights > 1e-6 apart | max running-stat diff | max loss rel. diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        for optimiser in args.optimizers:
            settings = json.loads(json.dumps(base))
            settings["train"].update(steps=args.steps, optimizer=optimiser, checkpoint_every=args.steps + 1)
            reference, seconds = _train(args.cache, settings, root / optimiser / "one", 1, 1)
            print(f"| {optimiser} | 1 process, 1 thread (reference) | {seconds:.1f} | 0 | 0 | 0 | 0 |", flush=True)
            runs = [("1 process, 2 threads (noise floor)", 1, 2)] + [(f"{n} processes", n, n) for n in args.processes]
            for name, processes, threads in runs:
                model, seconds = _train(args.cache, settings, root / optimiser / name.split(",")[0].replace(" ", "-")
                                        / str(threads), processes, threads)
                d = compare(reference, model)
                print(f"| {optimiser} | {name} | {seconds:.1f} | {d['max_weight']:.2e} | {100 * d['share_apart']:.3f} % "
                      f"| {d['max_running']:.2e} | {d['max_loss_rel']:.2e} |", flush=True)


if __name__ == "__main__":
    main()
