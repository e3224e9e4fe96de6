"""Time the workflow end to end and its no-op rerun; report images/s of every training stage.

    python benchmarks/bench_workflow.py                      # the embedded default, in a temp folder
    python benchmarks/bench_workflow.py --configfile configs/smoke.yaml --keep /tmp/run

Runs `snakemake --cores all` in a fresh working directory (nothing of ./results is touched),
then `snakemake -n`, and reads each training stage's per-step log.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    parser.add_argument("--cores", default="all")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="selfpanoptic-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
                 "--configfile", str(Path(args.configfile).resolve()), "--cores", args.cores]
    full = run(snakemake, workdir)
    noop = run(snakemake + ["-n"], workdir)
    print(f"end to end:   {full:8.1f} s   ({args.configfile}, --cores {args.cores})")
    print(f"no-op rerun:  {noop:8.1f} s   (snakemake -n)")
    print("\ntraining stage                         steps   images/s (median)")
    for log in sorted(workdir.glob("results*/*/*/train/metrics.csv")) + sorted(workdir.glob("results*/*/*/*/train/metrics.csv")):
        frame = pd.read_csv(log)
        stage = log.parent.parent.relative_to(workdir)
        print(f"{str(stage):<38} {len(frame):>5}   {frame['images_per_s'].median():8.1f}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
