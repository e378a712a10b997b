#!/usr/bin/env bash
# One recipe trained once per value of one key, then one report of them all: its onsets figure
# (a row per run) shows at which value generalization starts to be delayed, and how the NTK's
# lead and the output-layer capacity's lag follow the delay; its onsets.csv has the same onsets
# with the key as a column.
#
#   tools/run_sweep.sh [--jobs N] [--out DIR] [--set KEY=VALUE ...] [--no-figures] RECIPE KEY VALUE [VALUE ...]
#   tools/run_sweep.sh default model.init_scale 1 2 4 8
#   tools/run_sweep.sh --jobs 2 --set train.steps=20000 experiments/mnist-init8-wd0.01.toml optimizer.weight_decay 0 0.01 0.1
#
# RECIPE: a recipe file, or `default` for the compiled-in one. KEY: a recipe key as `--set` takes
# it; --set fixes other keys for every run; --no-figures leaves the report's figures out. Run
# directories: DIR/<last part of KEY>=<VALUE> (default DIR: runs/sweep-<recipe>-<KEY>). A run
# that finished earlier is kept and one that was stopped is resumed, so the sweep can be rerun
# after an interruption. --jobs N trains N runs at once, each with its share of the cores
# (OMP_NUM_THREADS): grokscope's threads spin between operations, so runs that share cores
# without shares starve each other (README, "Several runs at once"). The binary is the checkout's
# build/release/grokscope, or $GROKSCOPE.
#
# A grid of two keys is a sweep per value of the second, each with its own --out and that value
# in --set; `grokscope report` of all their runs then writes one onsets.csv with both keys as
# columns:
#   for wd in 0 0.01 0.1; do
#     tools/run_sweep.sh --out runs/grid/wd$wd --set optimizer.weight_decay=$wd default model.init_scale 2 4 8
#   done
#   build/release/grokscope report runs/grid/*/init_scale=* --out runs/grid
# A sweep of train.seed gives replicates of one condition; the report then adds the median and
# range of their onsets (replicates.csv, replicates.png), a row per condition:
#   for s in 8 2; do
#     tools/run_sweep.sh --out runs/seeds/init$s --set model.init_scale=$s default train.seed 0 1 2 3 4
#   done
#   build/release/grokscope report runs/seeds/init*/seed=* --out runs/seeds
set -uo pipefail
((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) ||
  { echo "run_sweep: needs bash 5.1 or later (wait -n -p); this is $BASH_VERSION" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"  # paths given are the caller's: no cd
usage="usage: tools/run_sweep.sh [--jobs N] [--out DIR] [--set KEY=VALUE ...] [--no-figures] RECIPE KEY VALUE [VALUE ...]"
fail() { echo "run_sweep: $*" >&2; exit 2; }

jobs=1 out="" fixed=() report_args=()
while [[ $# -gt 0 && "$1" == --* ]]; do
  if [[ "$1" == --no-figures ]]; then
    report_args+=(--no-figures)
    shift
    continue
  fi
  [[ $# -ge 2 ]] || fail "$1 needs a value; $usage"
  case "$1" in
    --jobs) jobs="$2" ;;
    --out) out="$2" ;;
    --set) fixed+=(--set "$2") ;;
    *) fail "unknown option $1; $usage" ;;
  esac
  shift 2
done
[[ $# -ge 3 ]] || fail "$usage"
recipe="$1" key="$2"
shift 2
values=("$@")
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || fail "--jobs takes a number of runs at once, 1 or more, not '$jobs'"
[[ "$key" =~ ^[a-z_]+\.[a-z_0-9]+$ ]] || fail "KEY is a recipe key such as model.init_scale (section.key), not '$key'"
recipe_args=()
if [[ "$recipe" != default ]]; then
  [[ -f "$recipe" ]] || fail "no recipe file '$recipe' (a file such as experiments/mnist-init8-wd0.01.toml, or default)"
  recipe_args=("$recipe")
fi
bin="${GROKSCOPE:-$root/build/release/grokscope}"
[[ -x "$bin" ]] || fail "no binary at $bin; build first: cmake --preset release && cmake --build --preset release"
out="${out:-runs/sweep-$(basename "$recipe" .toml)-$key}"
threads=$(($(nproc) / jobs))
((threads >= 1)) || threads=1

dirs=()
declare -A given
for value in "${values[@]}"; do
  [[ "$value" != */* && -n "$value" ]] || fail "a value names a directory: '$value' cannot (no '/', not empty)"
  [[ -z "${given[$value]:-}" ]] || fail "$value is given twice"
  given[$value]=1
  dirs+=("$out/${key##*.}=$value")
done

# Two sweeps into one folder would train the same runs twice over each other.
mkdir -p "$out" || fail "cannot create $out; choose another --out"
exec 9>"$out/.sweep.lock"
flock -n 9 || fail "another sweep is training into $out; wait for it, or choose another --out"

train_one() {  # value, directory; run in the background, it becomes the run's process (exec)
  if [[ -f "$2/run.json" ]] && grep -q '"status": "finished"' "$2/run.json"; then
    echo "run_sweep: $2 finished earlier; kept"
  elif [[ -f "$2/ckpt/resume.safetensors" ]]; then
    echo "run_sweep: $2: resuming"
    OMP_NUM_THREADS=$threads exec "$bin" train --resume "$2" --quiet
  else
    # A directory some grokscope is training into (its run.lock held) is not ours to clear.
    if [[ -e "$2/run.lock" ]] && ! flock -n "$2/run.lock" true; then
      echo "run_sweep: $2: another process is training into it; left alone" >&2
      return 1
    fi
    echo "run_sweep: $2: training ${recipe} with $key = $1"
    rm -rf "$2"
    OMP_NUM_THREADS=$threads exec "$bin" train "${recipe_args[@]}" --out "$2" "${fixed[@]}" --set "$key=$1" --quiet
  fi
}

# Up to $jobs at once. Ctrl-C (or SIGTERM to this script) stops the runs in training, which
# checkpoint as they stop, and starts no more; a rerun resumes them.
stopped="" unfinished=0 running=0 ended=0
declare -A dir_of  # pid → run directory
trap 'stopped=1; kill -TERM $(jobs -p) 2>/dev/null' INT TERM
wait_one() {  # until one run ends (or a signal comes first), and says so
  local pid=""
  wait -n -p pid
  local status=$?
  [[ -n "${pid:-}" ]] || return 0  # the trap ran (and wait unset pid); the runs are still ending
  running=$((running - 1)) ended=$((ended + 1))
  local how=done
  if ((status != 0)); then
    unfinished=$((unfinished + 1))
    how=$([[ $status == 130 ]] && echo stopped || echo "failed (exit $status)")
  fi
  echo "run_sweep: ${dir_of[$pid]}: $how; $ended of ${#values[@]} runs ended"
}
for i in "${!values[@]}"; do
  while ((running == jobs)); do wait_one; done
  [[ -z "$stopped" ]] || break
  train_one "${values[$i]}" "${dirs[$i]}" &
  dir_of[$!]="${dirs[$i]}"
  running=$((running + 1))
done
while ((running > 0)); do wait_one; done

if [[ -n "$stopped" ]]; then
  echo "run_sweep: stopped; rerun the same command to resume" >&2
elif ((unfinished > 0)); then
  echo "run_sweep: $unfinished of ${#values[@]} runs failed (said above, and in their run.json); rerun the same command to resume them" >&2
fi
reported=()
for d in "${dirs[@]}"; do [[ -f "$d/metrics.csv" ]] && reported+=("$d"); done
((${#reported[@]} > 0)) || fail "no run logged anything to report"
"$bin" report "${reported[@]}" --out "$out" "${report_args[@]}"
status=$?
[[ -z "$stopped" ]] || exit 130
((unfinished == 0)) || exit 1
exit $status
