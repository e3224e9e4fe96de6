#!/usr/bin/env bash
# Run every ablation config (configs/ablations/*.yaml) with SEEDS seeds (1 to 3, default 1), each
# into results-ablation/<name>[-seed<k>]/, then print the table. From the repository root:
#   bash scripts/run_ablations.sh 3
set -euo pipefail
seeds=${1:-1}
if ! [[ "$seeds" =~ ^[1-3]$ ]]; then
  echo "error: SEEDS must be 1, 2 or 3 (configs/ablations/seeds/ holds seeds 1 and 2), not '$seeds'" >&2
  exit 2
fi
for config in configs/ablations/*.yaml; do
  name=$(basename "$config" .yaml)
  snakemake --cores all --configfile "$config"
  for ((k = 1; k < seeds; k++)); do
    snakemake --cores all --configfile "$config" "configs/ablations/seeds/seed$k.yaml" \
      --config "results=results-ablation/$name-seed$k"
  done
done
python scripts/ablation_table.py results-ablation/*/
