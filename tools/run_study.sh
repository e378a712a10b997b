#!/usr/bin/env bash
# One dataset's four conditions of the study, one after another, then one report with the runs
# side by side: the grokking recipe (init ×8, wd 0.01), its control (init ×2), and the
# output-scale pair (α = 0.5 and 0.001, wd 0).
#   tools/run_study.sh [--set KEY=VALUE ...] [mnist|fashion] [OUT]
#                                                (default: mnist into runs/study-<dataset>)
# --set applies to every condition's recipe (e.g. --set probe.geometry_center_k=1, one
# center-structure K at every probe step). A run that already finished is kept; one that was
# stopped is resumed (with the settings it started with); so the script can be rerun after an
# interruption. Each run takes about 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
sets=()
while [[ "${1:-}" == --set ]]; do
  [[ -n "${2:-}" ]] || { echo "run_study: --set needs KEY=VALUE" >&2; exit 2; }
  sets+=(--set "$2")
  shift 2
done
dataset="${1:-mnist}"
out="${2:-runs/study-$dataset}"
case "$dataset" in
  mnist | fashion) ;;
  *) echo "run_study: dataset must be mnist or fashion (EMNIST's conditions differ: see experiments/)" >&2; exit 2 ;;
esac
bin=build/release/grokscope
[[ -x "$bin" ]] || { echo "run_study: build first: cmake --preset release && cmake --build --preset release" >&2; exit 2; }
runs=()
for condition in init8-wd0.01 init2-wd0.01 init8-out0.5-wd0 init8-out0.001-wd0; do
  recipe="experiments/$dataset-$condition.toml"
  dir="$out/$dataset-$condition"
  runs+=("$dir")
  if [[ -f "$dir/run.json" ]] && grep -q '"status": "finished"' "$dir/run.json"; then
    echo "run_study: $dir finished earlier; kept"
  elif [[ -f "$dir/ckpt/resume.safetensors" ]]; then
    "$bin" train --resume "$dir" --quiet
  else
    # A directory some grokscope is training into (its run.lock held) is not ours to clear.
    if [[ -e "$dir/run.lock" ]] && ! flock -n "$dir/run.lock" true; then
      echo "run_study: $dir: another process is training into it; wait for it, or choose another OUT" >&2
      exit 1
    fi
    rm -rf "$dir"
    "$bin" train "$recipe" --out "$dir" --quiet "${sets[@]}"
  fi
done
"$bin" report "${runs[@]}" --out "$out"
