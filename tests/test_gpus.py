"""The GPU allocator gives concurrent jobs distinct devices, or shares of one (simulated device count)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from selfpanoptic.errors import InputError
from selfpanoptic.gpus import JOBS_PER_GPU_VARIABLE, claim_gpu, jobs_per_gpu_setting

HOLDER = """
import sys, time
from selfpanoptic.gpus import claim_gpu
with claim_gpu(count=int(sys.argv[1]), lock_dir=sys.argv[2], poll_seconds=0.05) as index:
    import os
    print(index, os.environ["CUDA_VISIBLE_DEVICES"], time.time(), flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _holder(lock_dir, count, hold):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", JOBS_PER_GPU_VARIABLE)}
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(count), str(lock_dir), str(hold)],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_one_job_per_gpu_by_default_concurrent_jobs_get_distinct_devices_and_a_third_waits(tmp_path):
    started = time.time()
    first, second = _holder(tmp_path, 2, 1.5), _holder(tmp_path, 2, 1.5)
    a, b = first.stdout.readline().split(), second.stdout.readline().split()
    assert {a[0], b[0]} == {"0", "1"} and a[0] == a[1] and b[0] == b[1]
    third = _holder(tmp_path, 2, 0)
    c = third.stdout.readline().split()
    assert float(c[2]) - started >= 1.4, "the third job must wait for a free device"
    for proc in (first, second, third):
        assert proc.wait(timeout=30) == 0


SHARER = """
import os, sys
from selfpanoptic.gpus import claim_gpu
with claim_gpu(lock_dir=sys.argv[1], poll_seconds=0.05) as index:
    print(index, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    sys.stdin.readline()  # hold the GPU until the test says so
"""


class Sharer:
    """A job in a subprocess that claims a GPU as the workflow's jobs do and holds it until released."""

    def __init__(self, lock_dir, gpus: int, jobs_per_gpu: int | None):
        env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", JOBS_PER_GPU_VARIABLE)}
        env["SELFPANOPTIC_GPU_COUNT"] = str(gpus)
        if jobs_per_gpu is not None:
            env[JOBS_PER_GPU_VARIABLE] = str(jobs_per_gpu)
        self.proc = subprocess.Popen([sys.executable, "-c", SHARER, str(lock_dir)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def device(self, timeout: float = 20) -> int | None:
        """The device the job got, or None when it has not got one within ``timeout`` seconds."""
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return None
        index, visible = self.proc.stdout.readline().split()
        assert index == visible
        return int(index)

    def release(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=20) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def sharers():
    started = []

    def start(lock_dir, gpus, jobs_per_gpu):
        started.append(Sharer(lock_dir, gpus, jobs_per_gpu))
        return started[-1]

    yield start
    for job in started:
        job.kill()


def test_two_jobs_share_the_only_gpu_and_a_third_waits_for_a_release(tmp_path, sharers):
    first, second = sharers(tmp_path, 1, 2), sharers(tmp_path, 1, 2)
    assert (first.device(), second.device()) == (0, 0)
    third = sharers(tmp_path, 1, 2)
    assert third.device(timeout=1.0) is None, "a third job must wait while two hold the GPU"
    first.release()
    assert third.device() == 0
    second.release()
    third.release()


def test_shared_gpus_fill_the_least_loaded_device_first(tmp_path, sharers):
    devices = [sharers(tmp_path, 2, 2).device() for _ in range(4)]  # one after the other
    assert devices == [0, 1, 0, 1]
    assert sharers(tmp_path, 2, 2).device(timeout=1.0) is None, "both GPUs hold two jobs"


def test_a_job_that_asked_for_a_whole_gpu_keeps_it_from_sharers(tmp_path, sharers):
    alone = sharers(tmp_path, 1, None)  # unset: 1 job per GPU
    assert alone.device() == 0
    sharer = sharers(tmp_path, 1, 4)
    assert sharer.device(timeout=1.0) is None
    alone.release()
    assert sharer.device() == 0


def test_jobs_per_gpu_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(JOBS_PER_GPU_VARIABLE, raising=False)
    assert jobs_per_gpu_setting() == 1
    monkeypatch.setenv(JOBS_PER_GPU_VARIABLE, "3")
    assert jobs_per_gpu_setting() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(JOBS_PER_GPU_VARIABLE, bad)
        with pytest.raises(InputError, match="resources.jobs_per_gpu"):
            jobs_per_gpu_setting()


def test_existing_cuda_visible_devices_is_respected(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with claim_gpu(count=2, lock_dir=tmp_path) as index:
        assert index is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_no_gpu_claims_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with claim_gpu(count=0, lock_dir=tmp_path) as index:
        assert index is None and "CUDA_VISIBLE_DEVICES" not in os.environ


def test_lock_is_released_after_the_block(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with claim_gpu(count=1, lock_dir=tmp_path) as index:
        assert index == 0
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with claim_gpu(count=1, lock_dir=tmp_path, poll_seconds=0.01) as index:
        assert index == 0
