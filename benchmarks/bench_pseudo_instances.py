"""Pseudo instances of a batch: per-class loop, per-image loop and one batched call, timed.

    python benchmarks/bench_pseudo_instances.py                          # 8 x 128x256, 8-dim, 3 classes
    python benchmarks/bench_pseudo_instances.py --threads 1 --repeats 2  # a small CPU run
    python benchmarks/bench_pseudo_instances.py --spread 0.3 --batch 16 --no-cuda
    python benchmarks/bench_pseudo_instances.py --gpu-seed-block 4096 --count-ops   # tune the GPU block

A batch of ``--batch`` seeded scenes of ``--height`` x ``--width`` pixels is drawn like the
output of a trained instance head (see ``make_batch``): a semantic map of blocky stuff and
``--classes`` thing classes, rectangular objects of every thing class whose embeddings
(``--dim``-dimensional) are tight Gaussian blobs (``--spread``) with means at least
``2 * delta_d`` apart, and a semantic confidence per pixel. They are turned into pseudo
instances (``delta_v = 0.5``, ``delta_d = 2.0``, ``min_size = 20``, ``min_confidence = 0.5``) by

* ``per class``: the clustering loop of the earlier code, :func:`mean_shift` and
  :func:`merge_close_clusters` for every (image, class), then the size and confidence filters;
* ``per image``: :func:`selfpanoptic.pseudo.masks.pseudo_instances` for every image;
* ``batched``: one :func:`selfpanoptic.pseudo.masks.pseudo_instances_batch` call.

All three must give the same instance maps and classes (the script exits with status 1
otherwise). Each is timed best of ``--repeats`` runs after one warm-up run, in wall time and
process CPU time, on the CPU (``torch.set_num_threads(--threads)``) and on CUDA when available.

``--count-ops`` also counts, for each path on the CPU but with the GPU's settings (seed blocks,
look intervals), the torch operations called from Python (each is at least one kernel launch on
a GPU) and the host synchronisations a GPU would make (``bool``/``int``/``item``/``tolist`` of a
tensor, ``nonzero``, ``unique``, ``bincount``). That is what the batch saves on a GPU, where
small kernels and synchronisations, not arithmetic, bound the clustering.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
import torch

from selfpanoptic.clustering import climb, cover, mean_shift, merge_close_clusters
from selfpanoptic.pseudo.masks import pseudo_instances, pseudo_instances_batch

DELTA_V, DELTA_D, MIN_SIZE, MIN_CONFIDENCE = 0.5, 2.0, 20, 0.5
THING_CLASSES = [11, 12, 13, 14, 15, 16, 17, 18]
STUFF_CLASSES = [0, 1, 2, 8, 10]


def make_batch(batch: int, height: int, width: int, dim: int, n_classes: int, spread: float, seed: int):
    """Embeddings ``(B, D, H, W)`` float32, semantic ``(B, H, W)`` uint8, confidence ``(B, H, W)`` float32."""
    rng = np.random.default_rng(seed)
    things = THING_CLASSES[:n_classes]
    semantic = np.zeros((batch, height, width), dtype=np.uint8)
    embeddings = rng.normal(0.0, 1.0, (batch, dim, height, width)).astype(np.float32)
    confidence = rng.uniform(0.3, 1.0, (batch, height, width)).astype(np.float32)
    cell = 16
    for b in range(batch):
        stuff = rng.choice(STUFF_CLASSES, size=(height // cell + 1, width // cell + 1))
        semantic[b] = np.kron(stuff, np.ones((cell, cell), dtype=np.uint8))[:height, :width]
        means: list[np.ndarray] = []
        for _ in range(int(rng.integers(6, 16))):  # objects of the image, drawn over each other
            class_id = int(rng.choice(things))
            h, w = int(rng.integers(4, height // 3)), int(rng.integers(4, width // 4))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            while True:  # instance means at least 2 * delta_d apart, as training pushes them
                mean = rng.uniform(-4.0, 4.0, dim)
                if all(np.linalg.norm(mean - other) >= 2 * DELTA_D for other in means):
                    break
            means.append(mean)
            semantic[b, y:y + h, x:x + w] = class_id
            noise = rng.normal(0.0, spread, (dim, h, w))
            embeddings[b, :, y:y + h, x:x + w] = (mean[:, None, None] + noise).astype(np.float32)
            confidence[b, y:y + h, x:x + w] = rng.uniform(0.3, 1.0)  # one confidence per object
    return embeddings, semantic, confidence, things


def per_class(embeddings: torch.Tensor, semantic: np.ndarray, confidence: np.ndarray, things, device):
    """The earlier path: one mean-shift and merge per (image, class), filters in numpy."""
    results = []
    for b in range(len(semantic)):
        instances = np.zeros(semantic.shape[1:], dtype=np.int32)
        flat = instances.reshape(-1)
        classes, next_id = {}, 1
        for class_id in things:
            mask = semantic[b] == class_id
            if not mask.any():
                continue
            points = embeddings[b][:, torch.from_numpy(mask).to(device)].t()
            labels = merge_close_clusters(points, mean_shift(points, DELTA_V), DELTA_D).cpu().numpy()
            sizes = np.bincount(labels)
            means = np.bincount(labels, weights=confidence[b][mask].astype(np.float64)) / sizes
            for k in np.flatnonzero(sizes >= MIN_SIZE):  # acceptance order, largest first
                if means[k] >= MIN_CONFIDENCE:
                    flat[np.flatnonzero(mask)[labels == k]] = next_id
                    classes[next_id] = class_id
                    next_id += 1
        results.append((instances, classes))
    return results


def best_of(repeats: int, fn, device: str) -> tuple[float, float, object]:
    """Best wall time, best process CPU time and the result of ``fn`` over ``repeats`` runs (after a warm-up)."""
    result = fn()
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        began, began_cpu = time.perf_counter(), time.process_time()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        wall = min(wall, time.perf_counter() - began)
        cpu = min(cpu, time.process_time() - began_cpu)
    return wall, cpu, result


SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::unique_dim",
            "aten::unique_consecutive", "aten::bincount")


@contextlib.contextmanager
def gpu_settings():
    """The GPU's seed block and look intervals, on the CPU (to count what a GPU would do)."""
    names = [(climb, "SEED_BLOCK"), (climb, "SEED_BLOCK_ELEMENTS"), (climb, "CHECK_EVERY"), (climb, "PACK_GROUPS"),
             (cover, "GROUP_COVER_CHECK")]
    saved = [getattr(module, name) for module, name in names]
    for module, name in names:
        setattr(module, name, getattr(module, name + "_CUDA"))
    try:
        yield
    finally:
        for (module, name), value in zip(names, saved):
            setattr(module, name, value)


def count_ops(fn) -> tuple[int, int]:
    """Torch operations called from Python, and host synchronisations (on a GPU), of ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    tolist, calls = torch.Tensor.tolist, [0]

    def counted_tolist(self):  # no operator on the CPU, a device-to-host copy on a GPU
        calls[0] += 1
        return tolist(self)

    torch.Tensor.tolist = counted_tolist
    try:
        with gpu_settings(), profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    finally:
        torch.Tensor.tolist = tolist
    events = prof.events()
    ops = sum(1 for e in events if e.cpu_parent is None and e.name.startswith("aten::"))
    syncs = sum(1 for e in events if e.name in SYNC_OPS) + calls[0]
    return ops, syncs


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--classes", type=int, default=3, help="thing classes (at most 8)")
    parser.add_argument("--spread", type=float, default=0.15, help="per-coordinate std of an instance's embeddings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA run even when available")
    parser.add_argument("--skip-per-class", action="store_true", help="time only the per-image and batched calls")
    parser.add_argument("--count-ops", action="store_true",
                        help="also count torch operations and host synchronisations with the GPU's settings")
    parser.add_argument("--gpu-seed-block", type=int, default=climb.SEED_BLOCK_CUDA,
                        help="seeds per mean-shift block on a GPU (clustering.climb.SEED_BLOCK_CUDA), to tune it")
    parser.add_argument("--gpu-block-elements", type=int, default=climb.SEED_BLOCK_ELEMENTS_CUDA,
                        help="seeds x points bound of a packed block on a GPU "
                             "(clustering.climb.SEED_BLOCK_ELEMENTS_CUDA)")
    parser.add_argument("--gpu-check-every", type=int, default=climb.CHECK_EVERY_CUDA,
                        help="iterations between host looks on a GPU (clustering.climb.CHECK_EVERY_CUDA)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    climb.SEED_BLOCK_CUDA, climb.CHECK_EVERY_CUDA = args.gpu_seed_block, args.gpu_check_every
    climb.SEED_BLOCK_ELEMENTS_CUDA = args.gpu_block_elements
    emb, semantic, confidence, things = make_batch(args.batch, args.height, args.width, args.dim, args.classes,
                                                   args.spread, args.seed)
    n_things = int(np.isin(semantic, things).sum())
    print(f"{args.batch} images of {args.height}x{args.width}, {args.dim}-dim embeddings, {len(things)} thing "
          f"classes, {n_things} thing pixels ({n_things / semantic.size:.0%}), spread {args.spread}, "
          f"torch threads {args.threads}, best of {args.repeats}; GPU: seed blocks of {args.gpu_seed_block} "
          f"(more up to {args.gpu_block_elements} seeds x points), host look every {args.gpu_check_every} "
          "iterations", flush=True)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    failures, rows = [], []
    for device in devices:
        tensor = torch.from_numpy(emb).to(device)
        runs = {
            "per image": lambda: [pseudo_instances(tensor[b], semantic[b], confidence[b], things, DELTA_V, DELTA_D,
                                                   MIN_SIZE, MIN_CONFIDENCE, device=device)
                                  for b in range(args.batch)],
            "batched": lambda: pseudo_instances_batch(tensor, semantic, confidence, things, DELTA_V, DELTA_D,
                                                      MIN_SIZE, MIN_CONFIDENCE, device=device),
        }
        if not args.skip_per_class:
            runs = {"per class": lambda: per_class(tensor, semantic, confidence, things, device), **runs}
        timed = {name: best_of(args.repeats, fn, device) for name, fn in runs.items()}
        counts = {name: count_ops(fn) for name, fn in runs.items()} if device == "cpu" and args.count_ops else {}
        batched_wall, batched_cpu, reference = timed["batched"]
        for name, (wall, cpu, result) in timed.items():
            ops, syncs = counts.get(name, ("-", "-"))
            rows.append((device, name, wall, cpu, args.batch / wall, wall / batched_wall, cpu / batched_cpu, ops,
                         syncs))
            print(f"  {device:4s} {name:9s}: {wall:7.3f} s (CPU {cpu:.3f} s), {args.batch / wall:7.1f} img/s, "
                  f"batched is {wall / batched_wall:5.2f}x faster (CPU time {cpu / batched_cpu:5.2f}x), "
                  f"{sum(len(r[1]) for r in result)} instances", flush=True)
            if not same(result, reference):
                failures.append(f"{device}: {name} differs from batched")

    print("\n| device | path | wall [s] | CPU [s] | images/s | batched speed-up (wall) | (CPU time) "
          "| torch ops (GPU settings) | host syncs (GPU settings) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for device, name, wall, cpu, rate, speed_up, cpu_speed_up, ops, syncs in rows:
        print(f"| {device} | {name} | {wall:.3f} | {cpu:.3f} | {rate:.1f} | {speed_up:.2f}x | {cpu_speed_up:.2f}x "
              f"| {ops} | {syncs} |")
    if failures:
        print("\nFAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
