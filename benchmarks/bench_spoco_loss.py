"""Time one forward + backward of :func:`selfpanoptic.losses.spoco_loss` on a synthetic batch.

The batch mimics instance pretraining: ``(B, D, H, W) = (8, 8, 64, 128)`` float32 embeddings,
about ``--instances`` rectangular instances per image (ids non-contiguous, reused across
images), a third of the background marked unlabelled. Prints milliseconds per call
(median of ``--repeats``), forward only and forward + backward.

Usage: ``PYTHONPATH=src python benchmarks/bench_spoco_loss.py [--threads 1] [--device cpu]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from selfpanoptic.losses import spoco_loss


def make_batch(b, d, h, w, instances, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, d, h, w, generator=g)
    ids = torch.zeros(b, h, w, dtype=torch.int64)
    for i in range(b):
        for k in range(instances):
            y0, x0 = int(torch.randint(0, h - 8, (1,), generator=g)), int(torch.randint(0, w - 8, (1,), generator=g))
            dy, dx = int(torch.randint(4, 24, (1,), generator=g)), int(torch.randint(4, 32, (1,), generator=g))
            ids[i, y0 : y0 + dy, x0 : x0 + dx] = 3 * k + 5
    unlabelled = (ids == 0) & (torch.rand(b, h, w, generator=g) < 0.33)
    return emb.to(device), ids.to(device), unlabelled.to(device)


def timed(fn, repeats, device):
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 8, 64, 128], metavar=("B", "D", "H", "W"))
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    emb, ids, unlabelled = make_batch(*args.shape, args.instances, device)
    emb.requires_grad_(True)

    def forward():
        with torch.no_grad():
            spoco_loss(emb, ids, unlabelled)

    def step():
        emb.grad = None
        spoco_loss(emb, ids, unlabelled)[0].backward()

    for fn in (forward, step):  # warm-up
        fn()
    print(f"spoco_loss {tuple(args.shape)}, ~{args.instances} instances/image, {device}, {args.threads} thread(s)")
    print(f"  forward:            {timed(forward, args.repeats, device):8.2f} ms/call")
    print(f"  forward + backward: {timed(step, args.repeats, device):8.2f} ms/call")


if __name__ == "__main__":
    main()
