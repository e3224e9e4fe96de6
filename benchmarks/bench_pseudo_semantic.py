"""Time per image of ``selfpanoptic pseudo-semantic``, this tree against another (one forward against two).

    python benchmarks/bench_pseudo_semantic.py                                  # this tree: 16 images of 256x512
    git archive HEAD~1 src | tar -x -C /tmp/before                              # the tree to compare with
    python benchmarks/bench_pseudo_semantic.py --before /tmp/before/src --alignment 0.5 0.0

It writes a synthetic target cache (``bench_training.synthetic_cache``: smooth random images) and a
random-weight model of config.yaml's toy semantic architecture (DeepLabv3+ ResNet-18, its head
sharpened so that thresholds keep and drop pixels), then runs the stage once per source tree and
``alignment`` setting in a fresh child process on the CPU with ``--threads`` torch threads (default
1; the stage's own batches of 8 images, ``--views`` views each). The child times the command
itself, without Python's and torch's start-up: wall-clock and CPU seconds (``getrusage``) per
image, and its peak resident set size. While it runs, the parent polls the size of the stage's
scratch file (``*.tmp-fused.h5``, :mod:`selfpanoptic.pseudo.fused_store`) and reports the largest
seen; afterwards it checks that the scratch file is gone and, with ``--before``, whether the two
trees' output files hold identical arrays.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def child(argv: list[str]) -> int:
    """In the child: ``SRC`` first on ``sys.path``, then one timed ``selfpanoptic`` command; prints JSON."""
    source, argv = argv[0], argv[1:]
    sys.path.insert(0, source)
    from selfpanoptic.cli import main as selfpanoptic

    import selfpanoptic as package

    assert Path(package.__file__).resolve().is_relative_to(Path(source).resolve()), package.__file__
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    code = selfpanoptic(argv)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"code": code, "wall_s": wall, "cpu_s": cpu, "peak_mib": after.ru_maxrss / 1024}))
    return code


def write_inputs(folder: Path, count: int, height: int, width: int) -> dict[str, Path]:
    """The synthetic cache and the sharpened random-weight toy teacher."""
    import torch
    from bench_training import load_preset, synthetic_cache

    from selfpanoptic.models import build_semantic_model
    from selfpanoptic.train.engine import save_model_file

    spec = load_preset("toy")["semantic"]["model"]
    torch.manual_seed(0)
    model = build_semantic_model(spec)
    with torch.no_grad():  # a random head's softmax is nearly flat: sharpen it, as training would
        model.head.weight.mul_(30.0)
    save_model_file(folder / "semantic.pt", model, "semantic", spec, (height, width))
    return {"cache": synthetic_cache(folder / "target.h5", count, height, width, seed=3),
            "model": folder / "semantic.pt"}


def settings(alignment: float, views: int) -> str:
    from selfpanoptic.config import validate_config

    section = validate_config({"selftrain": {"semantic": {"alignment": alignment, "views": views}}})["selftrain"]
    section.pop("rounds")
    return json.dumps(section)


def run_once(source: Path, inputs: dict[str, Path], out: Path, alignment: float, args) -> dict:
    """One child run of the stage from the tree ``source``; its timings plus the largest scratch file seen."""
    from selfpanoptic.pseudo.fused_store import scratch_path

    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(source), "pseudo-semantic",
               "--model", str(inputs["model"]), "--data", str(inputs["cache"]), "--source", str(inputs["cache"]),
               "--round", "1", "--out", str(out), "--selftrain-settings", settings(alignment, args.views),
               "--device", "cpu", "--threads", str(args.threads), "--quiet"]
    largest, done = [0], threading.Event()

    def poll() -> None:
        while not done.wait(0.05):
            try:
                largest[0] = max(largest[0], scratch_path(out).stat().st_size)
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    result = subprocess.run(command, capture_output=True, text=True)
    done.set()
    watcher.join()
    if result.returncode != 0:
        sys.exit(f"the stage failed ({result.returncode}):\n{result.stderr[-3000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    return timing | {"scratch_mib": largest[0] / 2**20, "scratch_left": scratch_path(out).exists()}


def identical(a: Path, b: Path) -> bool:
    import h5py

    with h5py.File(a) as x, h5py.File(b) as y:
        names = sorted(set(x) - {"image_ids"})
        return names == sorted(set(y) - {"image_ids"}) and all(np.array_equal(x[n][()], y[n][()]) for n in names)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="images of the split (default 16: two batches)")
    parser.add_argument("--height", type=int, default=256, help="working height (default 256)")
    parser.add_argument("--width", type=int, default=512, help="working width (default 512)")
    parser.add_argument("--views", type=int, default=2, help="views per image (default 2, the config's)")
    parser.add_argument("--alignment", type=float, nargs="+", default=[0.5],
                        help="selftrain.semantic.alignment of each run (default 0.5; 0 = the maxima store)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--before", type=Path,
                        help="a src/ folder of another tree to compare with (e.g. a git archive of the last commit)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))  # bench_training's synthetic inputs
    trees = {"this tree": HERE.parent / "src"} | ({"before": args.before} if args.before else {})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pseudo-semantic-") as tmp:
        inputs = write_inputs(Path(tmp), args.images, args.height, args.width)
        for alignment in args.alignment:
            outs = {}
            for name, source in trees.items():
                outs[name] = Path(tmp) / f"{name.replace(' ', '-')}-{alignment}.h5"
                result = run_once(source, inputs, outs[name], alignment, args)
                rows.append({"tree": name, "alignment": alignment} | result)
                print(f"  {name}, alignment {alignment}: {result['wall_s']:.1f} s", file=sys.stderr, flush=True)
            if args.before:
                rows[-1]["identical"] = rows[-2]["identical"] = identical(*outs.values())
    print(f"pseudo-semantic, {args.images} images of {args.height}x{args.width}, {args.views} views, CPU, "
          f"{args.threads} thread(s), toy DeepLabv3+ ResNet-18")
    print("| tree | alignment | wall s/image | CPU s/image | peak MiB | largest scratch MiB | scratch left | "
          "files identical |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['tree']} | {r['alignment']} | {r['wall_s'] / args.images:.2f} | {r['cpu_s'] / args.images:.2f} "
              f"| {r['peak_mib']:.0f} | {r['scratch_mib']:.1f} | {'yes' if r['scratch_left'] else 'no'} "
              f"| {r.get('identical', '')} |")
    if args.json:
        args.json.write_text(json.dumps({"images": args.images, "size": [args.height, args.width], "views": args.views,
                                         "threads": args.threads, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
