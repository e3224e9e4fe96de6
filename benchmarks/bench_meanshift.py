"""Mean-shift+ (torch) against sklearn's MeanShift: same partition, wall time, speed-up.

    pip install scikit-learn                   # not a dependency of the package; only needed here
    python benchmarks/bench_meanshift.py                       # 20k x 8, both settings, CPU (+ CUDA)
    python benchmarks/bench_meanshift.py --points 50000 --settings hard --threads 2

For every setting, ``--points`` seeded 8-dimensional embeddings are drawn like the output of a
trained instance head (see ``make_embeddings``), then clustered by

* ``selfpanoptic.clustering.mean_shift`` (bandwidth = delta_v = 0.5, bin seeding) and
  ``merge_close_clusters`` (delta_d = 2.0) on the CPU, and on CUDA when available;
* ``sklearn.cluster.MeanShift(bandwidth=0.5, bin_seeding=True, n_jobs=1)``.

Ours is timed best of ``--repeats`` runs (after one warm-up run) with ``torch.set_num_threads``
set to ``--threads``; sklearn once (it is the slow one; ``--sklearn-repeats`` to change). Wall
times are reported, and the process CPU times too (less sensitive to other jobs on the machine;
the CUDA speed-up is only meaningful in wall time). The
partitions are compared with the adjusted Rand index: mean-shift alone against sklearn, and
mean-shift+ against sklearn's labels passed through the same merge step. The script exits with
status 1 when an ARI is below ``--min-ari`` (0.99), or when the CPU speed-up of mean-shift is
below ``--min-speedup`` (not checked unless given).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

try:
    from sklearn.cluster import MeanShift
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("scikit-learn is missing: pip install scikit-learn to run this benchmark")

from selfpanoptic.clustering import bin_seeds, mean_shift, merge_close_clusters

BANDWIDTH = 0.5  # delta_v
DELTA_D = 2.0

SETTINGS = {
    # well-trained embeddings: tight clusters, means at least 2 * delta_d apart
    "trained": dict(clusters=(10, 40), spread=(0.1, 0.2), min_gap=2 * DELTA_D, outliers=0.0),
    # a harder case: wider clusters, some closer than 2 * delta_d (down to 2.5 bandwidths),
    # very unequal sizes and 3 % of points scattered between the clusters
    "hard": dict(clusters=(30, 40), spread=(0.15, 0.3), min_gap=1.25, outliers=0.03),
}


def make_embeddings(n: int, dim: int, setting: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` float32 embeddings and their true cluster (-1: outlier), seeded.

    The number of clusters is drawn from ``clusters``; cluster means are drawn uniformly in a
    box and rejected when closer than ``min_gap`` to an earlier mean; sizes follow a Dirichlet
    draw; each cluster is Gaussian with a per-coordinate standard deviation drawn from
    ``spread``. Outliers are uniform over the box around the means.
    """
    params = SETTINGS[setting]
    rng = np.random.default_rng(seed)
    k = int(rng.integers(params["clusters"][0], params["clusters"][1] + 1))
    half = max(3.0, params["min_gap"] * k ** (1.0 / dim))
    means: list[np.ndarray] = []
    while len(means) < k:
        m = rng.uniform(-half, half, dim)
        if all(np.linalg.norm(m - other) >= params["min_gap"] for other in means):
            means.append(m)
    n_out = int(round(params["outliers"] * n))
    sizes = rng.multinomial(n - n_out, rng.dirichlet(np.full(k, 1.0)))
    spreads = rng.uniform(*params["spread"], k)
    parts = [means[c] + rng.normal(0.0, spreads[c], (sizes[c], dim)) for c in range(k)]
    parts.append(rng.uniform(-half - 1, half + 1, (n_out, dim)))
    truth = np.concatenate([np.repeat(np.arange(k), sizes), np.full(n_out, -1)])
    points = np.concatenate(parts).astype(np.float32)
    shuffle = rng.permutation(n)
    return points[shuffle], truth[shuffle]


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie), as sklearn's adjusted_rand_score."""
    a = np.unique(np.asarray(a), return_inverse=True)[1].reshape(-1)
    b = np.unique(np.asarray(b), return_inverse=True)[1].reshape(-1)
    n = len(a)
    if n < 2:
        return 1.0
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=np.int64)
    np.add.at(table, (a, b), 1)

    def pairs(x: np.ndarray) -> float:
        x = x.astype(np.float64)
        return float((x * (x - 1) / 2).sum())

    index = pairs(table)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    total = n * (n - 1) / 2
    expected = rows * cols / total
    maximum = (rows + cols) / 2
    if maximum == expected:  # both labelings are a single cluster, or both all singletons
        return 1.0
    return float((index - expected) / (maximum - expected))


def best_of(repeats: int, fn, warm_up: bool = True) -> tuple[float, float, object]:
    """Best wall time, best process CPU time and the result of ``fn`` over ``repeats`` runs."""
    if warm_up:
        fn()  # allocations, CUDA context and kernels
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        began, began_cpu = time.perf_counter(), time.process_time()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = min(wall, time.perf_counter() - began)
        cpu = min(cpu, time.process_time() - began_cpu)
    return wall, cpu, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ours (sklearn: n_jobs=1)")
    parser.add_argument("--repeats", type=int, default=3, help="ours: best of this many runs")
    parser.add_argument("--sklearn-repeats", type=int, default=1)
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA run even when available")
    parser.add_argument("--min-ari", type=float, default=0.99)
    parser.add_argument("--min-speedup", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    failures = []
    rows = []
    for setting in args.settings:
        points, truth = make_embeddings(args.points, args.dim, setting, args.seed)
        n_seeds = len(bin_seeds(points, BANDWIDTH))
        print(f"\n[{setting}] {args.points} x {args.dim} points, {len(np.unique(truth[truth >= 0]))} clusters, "
              f"{n_seeds} bin seeds", flush=True)

        sk_time, sk_cpu, sk_labels = best_of(
            args.sklearn_repeats,
            lambda: MeanShift(bandwidth=BANDWIDTH, bin_seeding=True, n_jobs=1).fit_predict(points),
            warm_up=False,
        )
        sk_merged = merge_close_clusters(points, sk_labels, DELTA_D)
        print(f"  sklearn MeanShift (n_jobs=1): {sk_time:8.3f} s (CPU {sk_cpu:.3f} s), "
              f"{sk_labels.max() + 1} clusters", flush=True)

        for device in devices:
            tensor = torch.from_numpy(points).to(device)

            def ours_ms():
                return mean_shift(tensor, BANDWIDTH, device=device)

            def ours_plus():
                return merge_close_clusters(tensor, mean_shift(tensor, BANDWIDTH, device=device), DELTA_D, device=device)

            t_ms, cpu_ms, labels = best_of(args.repeats, ours_ms)
            t_plus, _, merged = best_of(args.repeats, ours_plus)
            labels, merged = labels.cpu().numpy(), merged.cpu().numpy()
            ari = adjusted_rand_index(labels, sk_labels)
            ari_plus = adjusted_rand_index(merged, sk_merged)
            ari_truth = adjusted_rand_index(merged, truth)
            speedup = sk_time / t_ms
            rows.append((setting, device, t_ms, t_plus, sk_time, speedup, ari, ari_plus, ari_truth,
                         int(labels.max()) + 1, int(merged.max()) + 1, cpu_ms, sk_cpu))
            print(f"  ours {device:4s} mean-shift:  {t_ms:8.3f} s (CPU {cpu_ms:.3f} s), {labels.max() + 1} clusters, "
                  f"speed-up {speedup:6.1f}x, ARI vs sklearn {ari:.6f}", flush=True)
            print(f"  ours {device:4s} mean-shift+: {t_plus:8.3f} s, {merged.max() + 1} clusters, "
                  f"ARI vs sklearn+merge {ari_plus:.6f}, ARI vs truth {ari_truth:.4f}", flush=True)
            if ari < args.min_ari or ari_plus < args.min_ari:
                failures.append(f"{setting}/{device}: ARI {ari:.4f} / {ari_plus:.4f} < {args.min_ari}")
            if device == "cpu" and args.min_speedup is not None and speedup < args.min_speedup:
                failures.append(f"{setting}/cpu: speed-up {speedup:.1f}x < {args.min_speedup}x")

    print(f"\n{args.points} x {args.dim} points, torch threads {args.threads}, sklearn n_jobs=1, "
          f"ours best of {args.repeats}")
    header = ("setting", "device", "ours ms [s]", "ours ms+ [s]", "sklearn [s]", "speed-up",
              "speed-up (CPU time)", "ARI", "ARI (+merge)", "ARI truth", "clusters", "after merge")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} | {r[5]:.1f}x | {r[12] / r[11]:.1f}x | "
              f"{r[6]:.4f} | {r[7]:.4f} | {r[8]:.4f} | {r[9]} | {r[10]} |")
    if failures:
        print("\nFAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
