"""The smoke workflow on a real SLURM cluster, through the profile profiles/slurm.

A one-node cluster (slurmctld + slurmd + munge, fake GPUs backed by /dev/null) is brought up on
this machine with scripts/slurm/start_local_slurm.sh and always stopped again with
scripts/slurm/stop_local_slurm.sh. The smoke workflow then runs twice: through SLURM and, as the
reference, locally; on the CPU training is seeded and deterministic, so both must give the same
numbers. SLURM's own job records (kept for MinJobAge after a job ends) show which rules went
through sbatch and that the GPU rules asked for, and were given, a GPU.

Needs root on a Debian-like system (apt-get installs the SLURM packages when missing); skipped
elsewhere, and when SELFPANOPTIC_SLURM_TESTS=0. Run alone with `pytest -m slurm`.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import SMOKE_RUNS
from selfpanoptic.config import overlay

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPTS = ROOT / "scripts" / "slurm"
PROFILE = ROOT / "profiles" / "slurm"
SMOKE_CONFIG = ROOT / "configs" / "smoke.yaml"
# Training jobs as 2 data-parallel ranks on 2 (fake) GPUs: one SLURM task that starts the ranks itself.
# Both runs train so, on the CPU (gloo), so their numbers still agree to the last digit.
RANKS = {"resources": {"train": {"gpu": 2, "processes": 2}}}
# The GPU rules and the section of the config's `resources` their GPU count comes from.
GPU_RULES = {"pretrain_semantic": "train", "pretrain_instance": "train", "predict_semantic": "predict",
             "predict_instance": "predict", "selftrain_semantic": "train", "selftrain_instance": "train",
             "pseudo_label_semantic": "predict", "pseudo_label_instance": "predict", "score_label_free": "predict"}
PARTITION = "local"  # the partition start_local_slurm.sh creates and the profile names
RUN_TIMEOUT = 900  # s, for each run; a status command that loses its jobs makes Snakemake wait forever


def _skip_reason() -> str | None:
    if os.environ.get("SELFPANOPTIC_SLURM_TESTS") == "0":
        return "SELFPANOPTIC_SLURM_TESTS=0"
    if not sys.platform.startswith("linux") or not Path("/etc/debian_version").is_file():
        return "brings up a local SLURM cluster: needs a Debian-like Linux system"
    if not shutil.which("apt-get") or not shutil.which("dpkg-query"):
        return "brings up a local SLURM cluster: needs apt-get and dpkg-query to install it"
    if os.geteuid() != 0:
        return "brings up a local SLURM cluster (system daemons, apt-get): needs root"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


def environment(base: Path) -> dict[str, str]:
    """The venv's bin first on PATH: the SLURM jobs inherit it (sbatch --export=ALL) and call
    `selfpanoptic` and `python -m snakemake` from there."""
    return dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        SELFPANOPTIC_SLURM_BASE=str(base),
        # Most of a smoke job is single-threaded Python start-up (Snakemake twice, then the
        # package): a node offering twice the machine's CPUs and 4 fake GPUs keeps both cores busy.
        SELFPANOPTIC_SLURM_CPUS=str(2 * (os.cpu_count() or 1)),
        SELFPANOPTIC_SLURM_GPUS="4",
    )


@pytest.fixture(scope="module")
def slurm_cluster(request, tmp_path_factory) -> Path:
    """Start the local cluster; stop it (only the daemons the script started) whatever happens."""
    base = tmp_path_factory.mktemp("slurm-cluster")
    env = environment(base)

    def stop():
        result = subprocess.run([str(SCRIPTS / "stop_local_slurm.sh")], env=env, capture_output=True, text=True)
        sys.stdout.write(result.stdout + result.stderr)

    request.addfinalizer(stop)  # before starting: a half-started cluster is stopped too
    start = subprocess.run(
        [str(SCRIPTS / "start_local_slurm.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    if start.returncode != 0:
        pytest.fail(f"start_local_slurm.sh failed:\n{start.stdout}\n{start.stderr}")
    return base


@dataclass
class Run:
    workdir: Path
    seconds: float
    stdout: str
    stderr: str


@dataclass
class Runs:
    slurm: Run
    local: Run
    slurm_jobs: list[dict[str, str]]  # `scontrol -d show job` records of the SLURM run's jobs


def ranks_config(folder: Path) -> Path:
    """The smoke config with :data:`RANKS` laid over it, written into ``folder``."""
    path = folder / "smoke-ranks.yaml"
    path.write_text(yaml.safe_dump(overlay(yaml.safe_load(SMOKE_CONFIG.read_text()), RANKS)))
    return path


def start_snakemake(workdir: Path, env: dict[str, str], *args: str, nice: int = 0) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        "nice", "-n", str(nice), str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(ranks_config(workdir)), *args,
    ]
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Waiter(threading.Thread):
    """Collects a Snakemake process's output and notes when it ended."""

    def __init__(self, process: subprocess.Popen):
        super().__init__(daemon=True)
        self.process, self.started, self.ended = process, time.monotonic(), None
        self.start()

    def run(self):
        self.stdout, self.stderr = self.process.communicate()
        self.ended = time.monotonic()


def finish(waiter: Waiter, workdir: Path, what: str) -> Run:
    waiter.join(timeout=max(1.0, RUN_TIMEOUT - (time.monotonic() - waiter.started)))
    if waiter.is_alive():
        waiter.process.kill()
        waiter.join()
        pytest.fail(f"{what} did not finish within {RUN_TIMEOUT} s:\n{waiter.stdout}\n{waiter.stderr[-20000:]}")
    if waiter.process.returncode != 0:
        pytest.fail(f"{what} failed (exit {waiter.process.returncode}):\n{waiter.stdout}\n{waiter.stderr[-20000:]}")
    return Run(workdir, waiter.ended - waiter.started, waiter.stdout, waiter.stderr)


def scontrol_jobs(workdir: Path) -> list[dict[str, str]]:
    """SLURM's records of the jobs that ran in ``workdir``: one dict of KEY=VALUE per job."""
    out = subprocess.run(["scontrol", "-d", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in out.splitlines()]
    jobs = [job for job in jobs if Path(job.get("WorkDir", "/nonexistent")).resolve() == workdir.resolve()]
    (workdir / "scontrol-jobs.txt").write_text("".join(f"{job}\n" for job in jobs))  # to read when a test fails
    return jobs


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory) -> Runs:
    """The smoke workflow through SLURM and then, as the reference, locally.

    One after the other, at normal priority: the test suite runs in worker processes (pytest-xdist),
    and a run at a lower priority beside them would starve.
    """
    env = environment(slurm_cluster)
    top = tmp_path_factory.mktemp("runs")
    slurm = Waiter(start_snakemake(
        top / "slurm", env,
        "--profile", str(PROFILE),
        # the profile's 20 s suits real clusters; these jobs take seconds
        "--slurm-init-seconds-before-status-checks", "1",
    ))
    local = None
    try:
        slurm_run = finish(slurm, top / "slurm", "the SLURM run")
        jobs = scontrol_jobs(slurm_run.workdir)  # right away: SLURM forgets jobs MinJobAge after they end
        local = Waiter(start_snakemake(top / "local", env, "--cores", "2"))
        local_run = finish(local, top / "local", "the local run")
        SMOKE_RUNS.append(local_run.workdir)
    finally:
        for waiter in (slurm, local):  # after a failure: no Snakemake left running
            if waiter is not None and waiter.process.poll() is None:
                waiter.process.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
                try:
                    waiter.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    waiter.process.kill()
    sys.stdout.write(f"\nSLURM run {slurm_run.seconds:.0f} s, then the local run {local_run.seconds:.0f} s\n")
    return Runs(slurm_run, local_run, jobs)


def rule_of(job: dict[str, str]) -> str:
    """The plugin comments each job `rule_<name>` or `rule_<name>_wildcards_<values>`."""
    comment = job.get("Comment", "")
    assert comment.startswith("rule_"), f"job {job.get('JobId')} has no rule comment: {comment!r}"
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def planned_jobs(snakemake_log: str) -> tuple[collections.Counter, collections.Counter]:
    """Jobs Snakemake ran, per rule: submitted ones (`rule X:`) and local ones (`localrule X:`)."""
    remote = collections.Counter(re.findall(r"^rule (\w+):$", snakemake_log, re.MULTILINE))
    local = collections.Counter(re.findall(r"^localrule (\w+):$", snakemake_log, re.MULTILINE))
    return remote, local


def test_every_submitted_job_ran_through_slurm(runs):
    remote, local = planned_jobs(runs.slurm.stderr + runs.slurm.stdout)
    assert set(GPU_RULES) <= set(remote), f"GPU rules missing from the run: {sorted(set(GPU_RULES) - set(remote))}"
    assert {"mix_sources", "summarize_metrics"} <= set(local), "localrules must run on the submitting host"
    submitted = collections.Counter(rule_of(job) for job in runs.slurm_jobs)
    assert submitted == remote, f"SLURM saw {dict(submitted)}, Snakemake submitted {dict(remote)}"
    assert not set(submitted) & set(local)
    for job in runs.slurm_jobs:
        assert job["JobState"] == "COMPLETED", f"{job['Comment']}: {job['JobState']}"
        assert job["Partition"] == PARTITION


def gpus_per_job(folder: Path) -> dict[str, int]:
    """What each GPU rule asks for on the run's config: `resources.<kind>.gpu`, defaults filled in."""
    shown = subprocess.run(
        [str(BIN / "selfpanoptic"), "config", str(ranks_config(folder))], capture_output=True, text=True, check=True
    ).stdout
    resources = yaml.safe_load(shown)["resources"]
    return {rule: resources[kind]["gpu"] for rule, kind in GPU_RULES.items()}


def test_gpu_rules_requested_and_got_a_gpu(runs, tmp_path):
    expected = gpus_per_job(tmp_path)
    assert expected["pretrain_semantic"] == 2 and expected["predict_semantic"] == 1
    assert all(count >= 1 for count in expected.values()), f"the smoke config asks for no GPU: {expected}"
    gpu_jobs = [job for job in runs.slurm_jobs if rule_of(job) in GPU_RULES]
    assert {rule_of(job) for job in gpu_jobs} == set(GPU_RULES)
    for job in gpu_jobs:
        count = expected[rule_of(job)]
        # the request (rule `resources: gpu=N` -> `sbatch --gpus=N`) ...
        assert job.get("TresPerJob") == f"gres:gpu:{count}", f"{job['Comment']}: TresPerJob={job.get('TresPerJob')}"
        # ... and the allocation: N of the node's (fake) GPU devices
        assert re.fullmatch(rf"gpu(:\w+)?:{count}(\(.*\))?", job.get("JOB_GRES", "")), \
            f"{job['Comment']}: JOB_GRES={job.get('JOB_GRES')}"
        assert job["MinMemoryNode"] != "0"  # the rule's mem_mb went with it


def test_cpu_rules_got_no_gpu(runs):
    cpu_jobs = [job for job in runs.slurm_jobs if rule_of(job) not in GPU_RULES]
    assert cpu_jobs
    for job in cpu_jobs:
        assert "gpu" not in job.get("TresPerJob", "") and job.get("JOB_GRES") in (None, "(null)"), job["Comment"]


def test_training_jobs_ran_two_ranks_in_one_task(runs):
    logs = sorted((runs.slurm.workdir / "results-smoke" / "logs").glob("*train*/**/*.log"))
    training = [log for log in logs if "pretrain_" in str(log) or "selftrain_" in str(log)]
    assert training, logs
    for log in training:
        assert "starting 2 processes" in log.read_text(), log
    jobs = [job for job in runs.slurm_jobs if rule_of(job).startswith(("pretrain_", "selftrain_"))]
    assert jobs and all(job.get("NumTasks", "1") == "1" for job in jobs), [job.get("NumTasks") for job in jobs]


def test_metrics_equal_the_local_run(runs):
    # Seeded, deterministic CPU training: the same numbers to the last digit, not approximately.
    slurm = (runs.slurm.workdir / "results-smoke/summary/metrics.csv").read_text()
    local = (runs.local.workdir / "results-smoke/summary/metrics.csv").read_text()
    assert slurm == local


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    values = {}
    with h5py.File(path) as h5:
        h5.visititems(lambda name, item: values.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return values


def test_caches_and_predictions_equal_the_local_run(runs):
    files = sorted(p.relative_to(runs.local.workdir) for p in (runs.local.workdir / "results-smoke").rglob("*.h5"))
    assert files == sorted(p.relative_to(runs.slurm.workdir) for p in (runs.slurm.workdir / "results-smoke").rglob("*.h5"))
    assert any("cache" in str(f) for f in files) and any("pred_" in f.name for f in files)
    for relative in files:
        local, slurm = h5_datasets(runs.local.workdir / relative), h5_datasets(runs.slurm.workdir / relative)
        assert local.keys() == slurm.keys(), relative
        for name, expected in local.items():
            actual = slurm[name]
            assert actual.dtype == expected.dtype and actual.shape == expected.shape, f"{relative}:{name}"
            assert np.array_equal(actual, expected, equal_nan=expected.dtype.kind in "fc"), f"{relative}:{name} differs"


def test_stop_script_stops_exactly_what_the_start_script_started(slurm_cluster, runs):
    records = slurm_cluster / "run" / "daemons"
    started = [line.split() for line in records.read_text().splitlines()]
    assert {name for name, _, _ in started} >= {"slurmctld", "slurmd"}
    result = subprocess.run(
        [str(SCRIPTS / "stop_local_slurm.sh")], env=environment(slurm_cluster), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name, pid, _ in started:
        comm = Path(f"/proc/{pid}/comm")
        assert not (comm.exists() and comm.read_text().strip() == name), f"{name} (pid {pid}) still runs"
    assert not records.exists()
    assert subprocess.run(["pgrep", "-x", "slurmstepd"], capture_output=True).returncode != 0, "job steps left behind"
    # its config is gone too: a client pointed at a stopped controller would wait ~10 s per command
    assert not Path("/etc/slurm/slurm.conf").exists() and not Path("/etc/slurm/gres.conf").exists()
