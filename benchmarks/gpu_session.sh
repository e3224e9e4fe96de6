#!/usr/bin/env bash
# Every GPU figure of docs/gpus-and-slurm.md ("Keeping the GPU busy"), in one prepared run on a GPU
# machine (a lent device, a workstation, an interactive SLURM job), from the repository root:
#
#   bash benchmarks/gpu_session.sh [OUT_DIR [PART ...]]   # OUT_DIR: default $OUT, else gpu-results/
#
# PARTS: bench (bench_training on the toy and real presets, start-up), flags (channels-last and
# torch.compile on the real preset), workflow (the toy default end to end), benchmark (one seed of
# configs/benchmark.yaml, SEED in the environment, default 0: its time against the 8-minute budget
# and its ablation table); default bench and workflow, whose time-outs add up to 580 s so that they
# fit one 10-minute call of a lent machine; flags and benchmark each in a call of their own. Not yet
# run on a GPU: the time-outs are estimates.
#
# Where the package is not installed, wheels in .whl/ are installed first (the recipe of the
# project's device notes). Writes into OUT_DIR: device.txt, bench_toy.{md,json},
# bench_real.{md,json}, bench_real_{channels_last,compile}.md, startup.md, workflow_time.txt,
# metrics.csv (the toy default run's scores) and train_rates.md (median images/s of every training job of that run). Each part is timed out on
# its own, so one slow part still leaves the others' files.
set -uo pipefail
out="${1:-${OUT:-gpu-results}}"
shift || true
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(bench workflow)
mkdir -p "$out"

if [ -d .whl ] && ! python3 -c "import snakemake" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/sp . || exit 1
    export PYTHONPATH=/tmp/sp:/tmp/site PATH=/tmp/sp/bin:/tmp/site/bin:$PATH
fi
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -c "import torch; print(torch.__version__)"; } \
    > "$out/device.txt" 2>&1

bench() {
    timeout 100 python3 benchmarks/bench_training.py --preset toy --workers 0 4 --json "$out/bench_toy.json" \
        > "$out/bench_toy.md" 2>&1
    timeout 200 python3 benchmarks/bench_training.py --preset real --steps 10 --workers 0 4 --json "$out/bench_real.json" \
        > "$out/bench_real.md" 2>&1
    timeout 40 python3 benchmarks/bench_startup.py > "$out/startup.md" 2>&1
}

flags() {  # are channels-last and torch.compile worth turning on?
    timeout 120 python3 benchmarks/bench_training.py --preset real --steps 10 --stages pretrain_semantic pretrain_instance \
        --channels-last > "$out/bench_real_channels_last.md" 2>&1
    timeout 180 python3 benchmarks/bench_training.py --preset real --steps 10 --warmup 5 --stages pretrain_semantic \
        pretrain_instance --compile > "$out/bench_real_compile.md" 2>&1
}

workflow() {  # the toy default end to end, four GPU jobs at a time on the one GPU (target: 2 minutes)
    rm -rf results data/toy
    local start
    start=$(date +%s)
    timeout 240 snakemake --cores all --resources gpu=4 --configfile config.yaml configs/share-gpu.yaml \
        > "$out/workflow.log" 2>&1
    echo "exit $? after $(( $(date +%s) - start )) s: snakemake --cores all --resources gpu=4 (jobs_per_gpu 4), $(nproc) CPUs" \
        > "$out/workflow_time.txt"
    cp results/summary/metrics.csv "$out/metrics.csv" 2>/dev/null
    python3 - "$out/train_rates.md" <<'EOF2'
import csv, statistics, sys
from pathlib import Path
lines = ["| training job | steps | images/s (median) | data wait s/step (median) |", "|---|---:|---:|---:|"]
for log in sorted(Path("results").glob("**/train/metrics.csv")):
    rows = list(csv.DictReader(open(log)))
    if rows:
        lines.append(f"| {log.parent.parent} | {len(rows)} | {statistics.median(float(r['images_per_s']) for r in rows):.1f} "
                     f"| {statistics.median(float(r['data_s']) for r in rows):.4f} |")
Path(sys.argv[1]).write_text("\n".join(lines) + "\n")
EOF2
}

benchmark() {  # one seed of the method benchmark, four GPU jobs at a time (budget: 8 minutes of one H100)
    local seed="${SEED:-0}" start
    start=$(date +%s)
    timeout 560 snakemake --cores all --resources gpu=4 --configfile configs/benchmark.yaml configs/share-gpu.yaml \
        --config "seeds=[$seed]" > "$out/benchmark_seed$seed.log" 2>&1
    echo "exit $? after $(( $(date +%s) - start )) s: configs/benchmark.yaml seed $seed, jobs_per_gpu 4, $(nproc) CPUs" \
        > "$out/benchmark_seed${seed}_time.txt"
    cp results-benchmark/summary/ablation.csv "$out/benchmark_seed${seed}_ablation.csv" 2>/dev/null
}

for part in "${parts[@]}"; do "$part"; done
tail -n 3 "$out"/*.md "$out"/*.txt
