"""Run the rehearsal preset and measure every stage: wall time, CPU time, peak memory, extrapolated to the real datasets.

    python benchmarks/bench_rehearsal.py /tmp/rehearsal                 # configs/rehearsal.yaml, --cores all
    python benchmarks/bench_rehearsal.py /tmp/rehearsal --report-only   # the table of a finished run again
    python benchmarks/bench_rehearsal.py /tmp/rehearsal --clean         # delete its data and results afterwards
    python benchmarks/bench_rehearsal.py /tmp/rehearsal --resume        # finish a run that was interrupted
    python benchmarks/bench_rehearsal.py /tmp/rehearsal --configfile configs/rehearsal.yaml my-layer.yaml \
        --real-preset configs/daformer-synthia-cityscapes.yaml --target results-x/round1/semantic/model.pt

Runs `snakemake --cores all --configfile configs/rehearsal.yaml` in FOLDER (nothing of ./results
is touched) with a `selfpanoptic` first on PATH that runs the real command as its child and
records, per job, the command line, wall time, CPU time (user + system) and peak resident set
size (``os.wait4``: ``ru_maxrss`` of the command and of any worker process it waited for, the
largest of them, not their sum: a data job with ``--threads N`` holds up to N + 1 times it) in
FOLDER/.bench/jobs.jsonl. The workflow's rules all call `selfpanoptic`, so every job is measured,
and nothing in the workflow changes.

Each stage is then extrapolated to the real datasets by what it scales with:

- images: indexing (every file of the dataset), caching (the cached images), prediction,
  pseudo-labels, export, fusion and scoring (the images of the split they read), the audit. Real
  counts: Synthia 9,400, GTA5 24,966, the thesis' mixed source 10,348 (Synthia + the 948 GTA5
  images holding a truck and a train; a one-source protocol caches all of its dataset),
  Cityscapes train 2,975 and val 500. Time scales as time / toy images x real images (the
  command's start-up, about 3 s for model commands, is counted in the time per image: a slight
  overestimate);
- steps: training; time = the job's time outside its training loop + the mean time of a step
  after the first x the real preset's steps (configs/synthia-gta-cityscapes.yaml by default,
  `--real-preset`). The loop's time is the job log's "N steps in X s", shared out over the steps
  as the images/s of the stage's train/metrics.csv say;
- nothing: the summary, the ablation table and the report (constant), and the toy generator
  (no real run has it).

Peak memory is not extrapolated: no stage's memory grows with the split (docs/results.md, "Peak
memory per stage"); it grows with the image size, the batch and the model, which the rehearsal
has at their real values. The extrapolated times are of this machine (a CPU); a GPU runs the
model stages many times faster, the data and scoring stages (CPU work) about as fast.

Wall times are extrapolated, and CPU times in the same proportion. The machine's load during
the run is reported too: the mean 1-minute load average and how much of
the machine's CPU time went to other processes (from /proc/stat), since a shared machine slows
the wall times (CPU times much less).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REAL_IMAGES = {"synthia": 9400, "gta": 24966, "target_train": 2975, "target_val": 500}
"""Images of the real datasets."""

GTA_WITH_TRUCK_AND_TRAIN = 948
"""GTA5 images that hold a truck and a train: what the two-source mix takes of GTA5 (the thesis)."""


def real_source_images(sources: list[str]) -> int:
    """Images of the real source: the thesis' mix (Synthia + 948 GTA5 images) or one dataset whole."""
    if len(sources) == 2:
        return REAL_IMAGES["synthia"] + GTA_WITH_TRUCK_AND_TRAIN
    return REAL_IMAGES[sources[0]]

MODEL_STAGES = ("pretrain-semantic", "pretrain-instance", "selftrain-semantic", "selftrain-instance")

WRAPPER = '''#!{python}
# Written by benchmarks/bench_rehearsal.py: runs the real selfpanoptic and records what it cost.
import json, os, subprocess, sys, time
began, tick = time.time(), time.perf_counter()
child = subprocess.Popen([{real!r}, *sys.argv[1:]])
while True:
    try:
        _, status, usage = os.wait4(child.pid, 0)
        break
    except InterruptedError:
        continue
code = os.waitstatus_to_exitcode(status)
child.returncode = code
try:
    stdout = os.readlink("/proc/self/fd/1")  # the job's log, where the rule redirects it
except OSError:
    stdout = ""
record = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "stdout": stdout, "began": began, "wall_s": time.perf_counter() - tick,
          "user_s": usage.ru_utime, "system_s": usage.ru_stime, "max_rss_mib": usage.ru_maxrss / 1024,
          "returncode": code}}
with open({log!r}, "a") as handle:
    handle.write(json.dumps(record) + "\\n")
sys.exit(code if code >= 0 else 128 - code)
'''


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``every`` seconds while the run lasts."""

    def __init__(self, every: float = 15.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.done = every, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.samples.append(os.getloadavg()[0])


def run_workflow(folder: Path, configfiles: list[Path], cores: str, targets: list[str], resume: bool) -> dict:
    """Snakemake in ``folder`` with the measuring wrapper; returns what the run as a whole cost.

    ``resume``: keep the jobs measured by an earlier, interrupted run in ``folder``; Snakemake
    runs the jobs that are left, and the table counts both runs."""
    bench = folder / ".bench"
    (bench / "bin").mkdir(parents=True, exist_ok=True)
    log = bench / "jobs.jsonl"
    if not resume:
        for old in (log, bench / "runs.jsonl", bench / "run.json"):
            old.unlink(missing_ok=True)
    real = shutil.which("selfpanoptic", path=str(Path(sys.executable).parent)) or shutil.which("selfpanoptic")
    if real is None:
        sys.exit("no selfpanoptic command next to this Python or on PATH: pip install -e . first")
    wrapper = bench / "bin" / "selfpanoptic"
    wrapper.write_text(WRAPPER.format(python=sys.executable, real=real, log=str(log)))
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=os.pathsep.join([str(wrapper.parent), str(Path(sys.executable).parent),
                                                 os.environ.get("PATH", "")]))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
           "--configfile", *map(str, configfiles), "--cores", cores, *targets]
    sampler = LoadSampler()
    busy0, total0 = cpu_ticks()
    load0, began, started = os.getloadavg()[0], time.perf_counter(), time.time()
    sampler.start()
    with open(bench / "snakemake.log", "w") as out:
        result = subprocess.run(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - began
    sampler.done.set()
    busy1, total1 = cpu_ticks()
    ticks = os.sysconf("SC_CLK_TCK")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    run = {"command": shlex.join(cmd), "commit": commit, "began": started, "wall_s": wall, "returncode": result.returncode, "cpus": os.cpu_count(),
           "load_start": load0, "load_samples": sampler.samples, "machine_busy_cpu_s": (busy1 - busy0) / ticks,
           "machine_total_cpu_s": (total1 - total0) / ticks}
    with open(bench / "runs.jsonl", "a") as handle:
        handle.write(json.dumps(run) + "\n")
    if result.returncode != 0:
        sys.exit(f"snakemake failed after {wall:.0f} s; see {bench / 'snakemake.log'}")
    return run


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def csv_rows(path: Path) -> int:
    with open(path) as handle:
        return max(0, sum(1 for _ in handle) - 1)


def split_of(path: str) -> str:
    """``target_train``, ``target_val`` or ``source`` from a cache or prediction file name."""
    match = re.search(r"(target_[A-Za-z0-9]+|source)", Path(path).name)
    return match.group(1) if match else "?"


LOOP = re.compile(r"(\d+) steps in ([0-9.]+) s")


def job_log(record: dict) -> Path | None:
    """The log a job's output went to: recorded by the wrapper, else the log that names its --out."""
    if record.get("stdout", "").endswith(".log"):
        return Path(record["stdout"])
    out = option(record["argv"], "--out")
    cwd = Path(record["cwd"])
    for log in cwd.glob("results*/logs/**/*.log"):
        if out and f"-> {out}" in log.read_text(errors="replace"):
            return log
    return None


def training_steps(record: dict) -> list[float]:
    """Seconds of each training step of a training job: the training loop's time from its log
    ("N steps in X s"), shared out over the steps as their images/s in train/metrics.csv say."""
    import pandas as pd

    log = job_log(record)
    match = LOOP.findall(log.read_text(errors="replace")) if log else []
    if not match:
        raise SystemExit(f"no 'N steps in X s' line in the log of {shlex.join(record['argv'][:3])}")
    loop = float(match[-1][1])
    rates = pd.read_csv(Path(record["cwd"]) / option(record["argv"], "--work-dir") / "metrics.csv")["images_per_s"]
    shares = (1 / rates) / (1 / rates).sum()
    return (shares * loop).tolist()


def real_steps(stage: str, preset: dict) -> int:
    task = stage.split("-")[1]
    return preset["selftrain"][task]["train"]["steps"] if stage.startswith("selftrain") else preset[task]["train"]["steps"]


def describe(record: dict, config: dict) -> tuple[str, str, str, int | None, int | None]:
    """(stage, what it reads, what it scales with, toy count, real count) of one job."""
    argv, cwd, toy = record["argv"], Path(record["cwd"]), config["toy"]
    real = {**REAL_IMAGES, "source": real_source_images(config["mixing"]["sources"])}
    stage = argv[0]
    if stage == "synthesize":
        return stage, "toy domains", "(toy only)", None, None
    if stage == "index":
        name, split = option(argv, "--name"), option(argv, "--split")
        key = f"{name}_{split}" if split else name
        return stage, key, "images", csv_rows(cwd / option(argv, "--out")), real.get(key)
    if stage == "mix":
        indexes = [option(argv, flag) for flag in ("--base", "--extra") if flag in argv]
        names = [Path(index).stem.removesuffix("_all") for index in indexes]
        return (stage, " + ".join(names), "images", sum(csv_rows(cwd / index) for index in indexes),
                sum(real.get(name, 0) for name in names))
    if stage == "cache":
        key = split_of(option(argv, "--out"))
        return stage, key, "images", csv_rows(cwd / option(argv, "--manifest")), real.get(key)
    if stage in MODEL_STAGES:
        return stage, split_of(option(argv, "--data")), "steps", None, None
    if stage in ("predict-semantic", "predict-instance", "pseudo-semantic", "pseudo-instance"):
        key = split_of(option(argv, "--data"))
        return stage, key, "images", toy_images(key, toy), real.get(key)
    if stage in ("export-semantic", "export-instance", "fuse-panoptic", "score-semantic", "score-instance",
                 "score-panoptic"):
        return stage, "target_val", "images", toy["target_val_images"], REAL_IMAGES["target_val"]
    if stage == "audit":
        return stage, "target_train", "images", toy["target_train_images"], REAL_IMAGES["target_train"]
    return stage, "-", "(constant)", None, None


def toy_images(key: str, toy: dict) -> int | None:
    return {"target_train": toy["target_train_images"], "target_val": toy["target_val_images"]}.get(key)


def merged_config(configfiles: list[Path]) -> dict:
    """The config of ``configfiles`` laid over each other, as Snakemake merges them, validated."""
    from functools import reduce

    from selfpanoptic.config import overlay, validate_config
    from selfpanoptic.config_sources import read_config_file

    return validate_config(reduce(overlay, [read_config_file(path) for path in configfiles], {}))


def table(folder: Path, configfiles: list[Path], real_preset: Path) -> str:
    from selfpanoptic.config import load_config

    config = merged_config(configfiles)
    preset = load_config(real_preset)
    records = [json.loads(line) for line in (folder / ".bench" / "jobs.jsonl").read_text().splitlines() if line]
    groups: dict[tuple, list] = defaultdict(list)
    for record in records:
        if record["argv"] and record["argv"][0] not in ("-h", "--help", "--version"):
            groups[describe(record, config)[:3]].append(record)
    lines = ["| stage | reads | jobs | scales with | toy n | wall s/job | CPU s/job | peak RSS MiB | real n "
             "| real: wall h/job | real: CPU h/job |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    totals = {"wall": 0.0, "cpu": 0.0, "real": 0.0, "real_cpu": 0.0}
    order = {name: i for i, name in enumerate(
        ["synthesize", "index", "mix", "cache", "pretrain-semantic", "pretrain-instance", "predict-semantic",
         "predict-instance", "pseudo-semantic", "pseudo-instance", "selftrain-semantic", "selftrain-instance",
         "export-semantic", "export-instance", "fuse-panoptic", "score-semantic", "score-instance", "score-panoptic",
         "audit", "summarize", "ablation", "report"])}
    for key in sorted(groups, key=lambda k: (order.get(k[0], 99), k[1])):
        jobs = groups[key]
        stage, reads, scales = key
        wall = sum(r["wall_s"] for r in jobs) / len(jobs)
        cpu = sum(r["user_s"] + r["system_s"] for r in jobs) / len(jobs)
        peak = max(r["max_rss_mib"] for r in jobs)
        totals["wall"] += wall * len(jobs)
        totals["cpu"] += cpu * len(jobs)
        toy_n, real_n = describe(jobs[0], config)[3:]
        if scales == "steps":
            extrapolated = []
            for record in jobs:
                seconds = training_steps(record)
                steady = seconds[1:] or seconds
                per_step = sum(steady) / len(steady)
                outside = record["wall_s"] - sum(seconds)
                extrapolated.append(outside + per_step * real_steps(stage, preset))
            real_n = real_steps(stage, preset)
            toy_n = len(seconds)
            hours = sum(extrapolated) / len(extrapolated) / 3600
            scales = f"steps ({per_step:.1f} s/step)"
        elif toy_n and real_n:
            hours = wall / toy_n * real_n / 3600
            scales = f"images ({wall / toy_n:.2f} s/image)"
        else:
            hours = wall / 3600 if scales == "(constant)" else 0.0
        cpu_hours = hours * cpu / wall  # the job's CPU time scales as its wall time
        if scales != "(toy only)":
            totals["real"] += hours * len(jobs)
            totals["real_cpu"] += cpu_hours * len(jobs)
        lines.append(f"| {stage} | {reads} | {len(jobs)} | {scales} | {toy_n if toy_n is not None else '-'} | "
                     f"{wall:.1f} | {cpu:.1f} | {peak:.0f} | {real_n if real_n is not None else '-'} | "
                     f"{hours:.2f} | {cpu_hours:.2f} |")
    lines.append(f"\nJobs: {len(records)}; their wall time {totals['wall'] / 60:.1f} min, CPU time "
                 f"{totals['cpu'] / 60:.1f} min; extrapolated to the real counts (these jobs, this CPU): "
                 f"{totals['real']:.0f} h wall, {totals['real_cpu']:.0f} CPU-h.")
    runs_file, legacy = folder / ".bench" / "runs.jsonl", folder / ".bench" / "run.json"
    runs = ([json.loads(line) for line in runs_file.read_text().splitlines() if line] if runs_file.is_file()
            else [json.loads(legacy.read_text())] if legacy.is_file() else [])
    if runs:
        run = {"commit": ", ".join(dict.fromkeys(r.get("commit", "?") for r in runs)), "cpus": runs[0]["cpus"],
               **{key: sum(r[key] for r in runs) for key in ("wall_s", "machine_busy_cpu_s", "machine_total_cpu_s")}}
        samples = [x for r in runs for x in (r["load_samples"] or [r["load_start"]])]
        # the CPU time of the jobs that ran during the measured runs (a resumed run's first part
        # may have ended without its record)
        windows = [(r["began"], r["began"] + r["wall_s"]) for r in runs if "began" in r]
        ours = (sum(r["user_s"] + r["system_s"] for r in records
                    if any(start <= r["began"] <= end for start, end in windows)) if windows else totals["cpu"])
        other = max(0.0, run["machine_busy_cpu_s"] - ours)
        parts = f" in {len(runs)} runs (resumed after an interruption)" if len(runs) > 1 else ""
        lines.append(f"Run: commit {run['commit']}, {run['wall_s'] / 60:.1f} min wall{parts} on {run['cpus']} CPUs; 1-minute load average "
                     f"{sum(samples) / len(samples):.2f} mean, {max(samples):.2f} max; the machine's CPUs were busy "
                     f"{100 * run['machine_busy_cpu_s'] / max(run['machine_total_cpu_s'], 1e-9):.0f} % of the time, "
                     f"{other / 60:.1f} CPU-min of it other processes than the rehearsal's jobs "
                     f"(snakemake itself included).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="working folder of the run (its data/ and results-rehearsal/ go there)")
    parser.add_argument("--configfile", nargs="+", default=[str(ROOT / "configs" / "rehearsal.yaml")],
                        help="config files, in the order Snakemake gets them (default: configs/rehearsal.yaml)")
    parser.add_argument("--real-preset", default=str(ROOT / "configs" / "synthia-gta-cityscapes.yaml"),
                        help="the preset whose training steps the extrapolation uses")
    parser.add_argument("--cores", default="all")
    parser.add_argument("--target", nargs="*", default=[], help="files to make (default: the whole workflow)")
    parser.add_argument("--report-only", action="store_true", help="print the table of a finished run in FOLDER")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted run in FOLDER, keeping what its jobs measured")
    parser.add_argument("--clean", action="store_true", help="delete the run's data and results afterwards (keeps .bench/)")
    args = parser.parse_args()
    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    configfiles = [Path(path).resolve() for path in args.configfile]
    if not args.report_only:
        run_workflow(folder, configfiles, args.cores, args.target, args.resume)
    print(f"{' + '.join(path.name for path in configfiles)} in {folder}, --cores {args.cores}; "
          f"extrapolated with {Path(args.real_preset).name}\n")
    print(table(folder, configfiles, Path(args.real_preset).resolve()))
    if args.clean:
        for child in folder.iterdir():
            if child.name != ".bench":
                shutil.rmtree(child) if child.is_dir() else child.unlink()


if __name__ == "__main__":
    main()
