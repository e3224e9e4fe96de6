"""How long a config's training would take on this machine, from a finished run's measured step times.

    python benchmarks/bench_method_time.py results configs/benchmark.yaml

Reads the training seconds and steps recorded in the model files of a finished run (``RESULTS``:
round 0's and round 1's semantic and instance models), turns them into seconds per step of each
training stage, and multiplies by the steps the given config (composed over ``config.yaml``) asks
for: round 0 and the oracle per seed, and every round of the main self-training and of each
variant of ``experiments`` per seed. Prediction, clustering for evaluation and data preparation
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

from selfpanoptic.config import compose_configs, experiment_selftrain, overlay, validate_config  # noqa: E402


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
    """Training seconds of one seed's round 0 + oracle, of its main rounds, and of each variant's rounds."""
    groups = len(config["instance"]["groups"])

    def rounds(selftrain: dict) -> float:
        one = (selftrain["semantic"]["train"]["steps"] * per_step["selftrain_semantic"]
               + groups * selftrain["instance"]["train"]["steps"] * per_step["selftrain_instance"])
        return config["selftrain"]["rounds"] * one

    pretrain = (config["semantic"]["train"]["steps"] * per_step["pretrain_semantic"]
                + groups * config["instance"]["train"]["steps"] * per_step["pretrain_instance"])
    out = {"round 0 + oracle": pretrain * (2 if config["oracle"] else 1), "main rounds": rounds(config["selftrain"])}
    for name in config["experiments"]:
        out[f"variant {name}"] = rounds(experiment_selftrain(config, name))
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
    per_seed = sum(parts.values())
    for name, seconds in parts.items():
        print(f"  {name:<28} {seconds / 60:7.1f} min per seed")
    seeds = len(config["seeds"])
    print(f"training per seed: {per_seed / 60:.1f} min; all {seeds} seed(s): {seeds * per_seed / 3600:.1f} h (one job at a time)")


if __name__ == "__main__":
    main()
