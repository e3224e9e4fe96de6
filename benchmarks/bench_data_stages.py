"""Wall and CPU seconds of ``selfpanoptic index`` and ``cache`` on real-size images, with 1 and 2 worker processes.

    python benchmarks/bench_data_stages.py                       # 16 images of 1024x2048, cached at 512x1024
    python benchmarks/bench_data_stages.py --threads 1 2 4 --repeats 5 --keep /tmp/bench-data

The toy generator (``selfpanoptic synthesize``) writes a Cityscapes-like train split of
``--images`` images at ``--height`` x ``--width`` (Cityscapes' own 1024x2048 by default: image,
labelIds, instanceIds and a 16-bit disparity file each). Then, for each ``--threads`` value, the
script runs the two data stages, each in a fresh ``python -m selfpanoptic.cli`` with ``--threads``:
``index --format cityscapes --split train`` and ``cache`` of that manifest at the working size
``--cache-size`` (as the ``cache_dataset`` rule passes ``data.height``/``data.width``, with
``data.compression`` lzf, the schema's default). Wall seconds are the child's; CPU seconds (user +
system) include its worker processes (``RUSAGE_CHILDREN``). The runs of the ``--threads`` values
alternate within each repeat, so that a machine busy with other work slows them alike; the fastest
of ``--repeats`` counts. Every run's manifest must be byte-identical, and every cache array-identical,
to those of the first ``--threads`` value: the script stops otherwise.

Before and after, the header gives the machine's own ceiling: how much faster N pure-Python loops
ran at once than one (N = the largest ``--threads``). On an idle machine it is about N; on one
busy with other work it is lower, and the stages' speed-up cannot exceed it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "selfpanoptic.cli"]


def run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the child and the processes it waited for) of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{shlex.join(argv)} failed:\n{done.stderr[-4000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def generate(folder: Path, images: int, height: int, width: int) -> Path:
    """The toy target domain with ``images`` train images of ``height`` x ``width`` (made once per folder)."""
    root = folder / "target"
    if not root.is_dir():
        toy = {"height": height, "width": width, "synthia_images": 1, "gta_images": 1,
               "target_train_images": images, "target_val_images": 1}
        print(f"generating {images} cityscapes-like images of {height}x{width} in {root} ...", file=sys.stderr)
        run([*CLI, "synthesize", "--toy-settings", json.dumps(toy), "--threads", str(os.cpu_count() or 1), "--quiet",
             "--synthia-root", str(folder / "synthia"), "--gta-root", str(folder / "gta"), "--target-root", str(root)])
    return root


def stage_commands(root: Path, folder: Path, threads: int, data: dict) -> dict[str, list[str]]:
    """The ``index`` and ``cache`` command lines of one ``--threads`` value."""
    manifest, cache = folder / f"target_train_{threads}.csv", folder / f"target_train_{threads}.h5"
    return {
        "index": [*CLI, "index", "--name", "target", "--format", "cityscapes", "--root", str(root), "--split", "train",
                  "--out", str(manifest), "--threads", str(threads), "--quiet"],
        "cache": [*CLI, "cache", "--data-settings", json.dumps(data), "--manifest", str(manifest), "--out", str(cache),
                  "--threads", str(threads), "--quiet"],
    }


def check_same(folder: Path, reference: int, threads: int) -> None:
    """Stop unless the manifest and the cache of ``threads`` equal those of ``reference``."""
    one, other = folder / f"target_train_{reference}.csv", folder / f"target_train_{threads}.csv"
    if one.read_bytes() != other.read_bytes():
        sys.exit(f"{other} differs from {one}")
    with h5py.File(one.with_suffix(".h5"), "r") as a, h5py.File(other.with_suffix(".h5"), "r") as b:
        for key in a:
            if not np.array_equal(a[key][()], b[key][()], equal_nan=a[key].dtype.kind == "f"):
                sys.exit(f"cache stack {key} of --threads {threads} differs from --threads {reference}")


def measure(root: Path, folder: Path, args: argparse.Namespace,
            data: dict) -> dict[tuple[str, int], tuple[float, float]]:
    """Best (wall, CPU) seconds of each stage and ``--threads`` value, over ``--repeats`` alternating rounds."""
    best: dict[tuple[str, int], tuple[float, float]] = {}
    for repeat in range(args.repeats):
        for threads in args.threads:
            for stage, argv in stage_commands(root, folder, threads, data).items():
                wall, cpu = run(argv)
                print(f"repeat {repeat + 1}: {stage} --threads {threads}: {wall:.2f} s wall, {cpu:.2f} s CPU",
                      file=sys.stderr)
                if (stage, threads) not in best or wall < best[stage, threads][0]:
                    best[stage, threads] = (wall, cpu)
            check_same(folder, args.threads[0], threads)
    return best


def ceiling(processes: int) -> float:
    """The machine's own speed-up at this moment: ``processes`` pure-Python loops at once against one.

    On a machine busy with other work (whose scheduler shares the CPUs per session) it is well
    under ``processes``, and no program can beat it.
    """
    loop = [sys.executable, "-c", "sum(range(3 * 10**7))"]
    began = time.perf_counter()
    subprocess.run(loop, check=True)
    alone = time.perf_counter() - began
    began = time.perf_counter()
    children = [subprocess.Popen(loop) for _ in range(processes)]
    for child in children:
        child.wait()
    return processes * alone / (time.perf_counter() - began)


def commit() -> str:
    """The checkout's commit, marked when the working tree has changes."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def print_table(best: dict[tuple[str, int], tuple[float, float]], threads: list[int]) -> None:
    print("| stage | `--threads` | wall s | CPU s | speed-up (wall) |")
    print("|---|---:|---:|---:|---:|")
    for stage in ("index", "cache", "index + cache"):
        parts = ["index", "cache"] if stage == "index + cache" else [stage]
        base = sum(best[p, threads[0]][0] for p in parts)
        for t in threads:
            wall, cpu = sum(best[p, t][0] for p in parts), sum(best[p, t][1] for p in parts)
            print(f"| {stage} | {t} | {wall:.2f} | {cpu:.2f} | {base / wall:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="train images (default 16)")
    parser.add_argument("--height", type=int, default=1024, help="image height (default 1024, Cityscapes')")
    parser.add_argument("--width", type=int, default=2048, help="image width (default 2048)")
    parser.add_argument("--cache-size", default="512x1024", metavar="HxW", help="working size (default 512x1024)")
    parser.add_argument("--compression", default="lzf", choices=["lzf", "gzip", "none"],
                        help="the cache's data.compression (default lzf, the schema's)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="--threads values (default 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the fastest run counts (default 3)")
    parser.add_argument("--keep", metavar="DIR", help="generate the data here and keep it (reused when present)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.cache_size.lower().split("x"))
    data = {"height": height, "width": width, "compression": args.compression}
    with tempfile.TemporaryDirectory(prefix="bench-data-stages-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        root = generate(folder, args.images, args.height, args.width)
        load_before, ceiling_before = os.getloadavg()[0], ceiling(max(args.threads))
        best = measure(root, folder, args, data)
        load_after, ceiling_after = os.getloadavg()[0], ceiling(max(args.threads))
    print(f"machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()}), Python "
          f"{platform.python_version()}; load average {load_before:.2f} before, {load_after:.2f} after; "
          f"{max(args.threads)} pure-Python loops at once ran {ceiling_before:.2f}x (before) and "
          f"{ceiling_after:.2f}x (after) as fast as one: the most any speed-up could be then")
    print(f"commit: {commit()}")
    print(f"command: `{shlex.join(['python', 'benchmarks/bench_data_stages.py', *sys.argv[1:]])}`")
    print(f"data: {args.images} cityscapes-like images of {args.height}x{args.width} (toy generator), "
          f"cached at {height}x{width} ({args.compression}); best of {args.repeats}\n")
    print_table(best, args.threads)


if __name__ == "__main__":
    main()
