"""The GPU allocator gives concurrent jobs distinct devices (simulated device count)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from selfpanoptic.gpus import claim_gpu

HOLDER = """
import sys, time
from selfpanoptic.gpus import claim_gpu
with claim_gpu(count=int(sys.argv[1]), lock_dir=sys.argv[2], poll_seconds=0.05) as index:
    import os
    print(index, os.environ["CUDA_VISIBLE_DEVICES"], time.time(), flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _holder(lock_dir, count, hold):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(count), str(lock_dir), str(hold)],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_concurrent_jobs_get_distinct_devices_and_a_third_waits(tmp_path):
    started = time.time()
    first, second = _holder(tmp_path, 2, 1.5), _holder(tmp_path, 2, 1.5)
    a, b = first.stdout.readline().split(), second.stdout.readline().split()
    assert {a[0], b[0]} == {"0", "1"} and a[0] == a[1] and b[0] == b[1]
    third = _holder(tmp_path, 2, 0)
    c = third.stdout.readline().split()
    assert float(c[2]) - started >= 1.4, "the third job must wait for a free device"
    for proc in (first, second, third):
        assert proc.wait(timeout=30) == 0


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
