"""How long a config's training would take on this machine, from a finished run's measured step times.

    python benchmarks/bench_method_time.py results configs/benchmark.yaml

Reads the training seconds and steps recorded in the model files of a finished run (``RESULTS``:
round 0's and round 1's semantic and instance models), turns them into seconds per step of each
training stage, and multiplies by the steps the given config (composed over ``config.yaml``) asks
for: every run of the run plan (round 0, the oracle, the rounds, of each seed and experiment). Prediction, clustering for evaluation and data preparation
are not counted, so the figure is a lower bound of the run's time on this machine, single-job;
Snakemake running N jobs at once divides the wall time by up to N.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from selfpanoptic.config import compose_configs, overlay, validate_config  # noqa: E402
from selfpanoptic.runs import plan_runs  # noqa: E402


def seconds_per_step(results: Path) -> dict[str, float]:
    """Measured seconds per step of the four training stages: the training seconds recorded in a
    finished run's model files over the steps of their per-step logs (``train/metrics.csv``)."""
    folders = {
        "pretrain_semantic": results / "round0/semantic",
        "pretrain_instance": next((results / "round0/instance").glob("*/model.pt")).parent,
        "selftrain_semantic": results / "round1/semantic",
        "selftrain_instance": next((results / "round1/instance").glob("*/model.pt")).parent,
    }
    measured = {}
    for stage, folder in folders.items():
        log = folder / "train" / "metrics.csv"
        if not (folder / "model.pt").is_file() or not log.is_file():
            raise SystemExit(f"{folder}: no model file or per-step log; give the results folder of a finished run")
        seconds = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)["train_seconds"]
        steps = int(log.read_text().strip().splitlines()[-1].split(",")[0])
        measured[stage] = seconds / steps
    return measured


def config_seconds(config: dict, per_step: dict[str, float]) -> dict[str, float]:
    """Training seconds of each experiment's runs (``main``: the runs without one) over all seeds,
    as the run plan lays them out: pretraining runs an experiment shares are counted once, under ``main``."""
    groups = len(config["instance"]["groups"])
    out: dict[str, float] = {}
    for run in plan_runs(config, config["oracle"]).runs.values():
        if run.pretraining:
            semantic, instance = run.config["semantic"], run.config["instance"]
            stages = ("pretrain_semantic", "pretrain_instance")
        else:
            semantic, instance = run.config["selftrain"]["semantic"], run.config["selftrain"]["instance"]
            stages = ("selftrain_semantic", "selftrain_instance")
        seconds = (semantic["train"]["steps"] * per_step[stages[0]]
                   + groups * instance["train"]["steps"] * per_step[stages[1]])
        label = run.experiment or "main"
        out[label] = out.get(label, 0.0) + seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results folder of a finished run (e.g. of the default config)")
    parser.add_argument("configs", nargs="*", type=Path, help="config files laid over config.yaml (none: the default)")
    args = parser.parse_args()
    layers = [yaml.safe_load((ROOT / "config.yaml").read_text())] + [yaml.safe_load(p.read_text()) for p in args.configs]
    merged = {}
    for layer in layers:  # key by key, as Snakemake merges config files; compose_configs restores replace-maps
        merged = overlay(merged, layer)
    config = validate_config(compose_configs(merged, layers[1:]), "composed config")
    per_step = seconds_per_step(args.results)
    print("measured seconds per step: " + ", ".join(f"{k} {v:.3f}" for k, v in per_step.items()))
    parts = config_seconds(config, per_step)
    seeds = len(config["seeds"])
    for name, seconds in parts.items():
        print(f"  {name:<32} {seconds / 60 / seeds:7.1f} min per seed")
    total = sum(parts.values())
    print(f"training per seed: {total / 60 / seeds:.1f} min; all {seeds} seed(s): {total / 3600:.1f} h (one job at a time)")


if __name__ == "__main__":
    main()
