#!/usr/bin/env bash
# Runs each test case of the `gpu` suite in a process of its own, and each subcase of the
# kernel-family check ("every kernel family against the float64 reference") in its own, and
# prints a markdown table: case, exit status, first error line.
#
# tools/gpu_check.sh calls it when the suite fails. A kernel that faults (an illegal address)
# leaves the process's CUDA context unusable, and every later test of that process fails with
# the same error; only separate processes tell which cases fail on their own.
#
#   tools/gpu_triage.sh TESTS_BINARY SECONDS LOG
#     TESTS_BINARY  grokscope_tests (or the emulated suite's binary, to try this without a GPU)
#     SECONDS       the time for all of it; cases not reached are listed as not run
#     LOG           every case's output, appended
set -uo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: tools/gpu_triage.sh TESTS_BINARY SECONDS LOG" >&2
  exit 2
fi
tests=$(realpath "$1") seconds=$2 log=$(realpath "$3")
cd "$(dirname "$0")/.." || exit 1
until=$(($(date +%s) + seconds))

# doctest filters are comma-separated wildcards: a comma or backslash in a name is escaped.
escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/,/\\,/g'; }

run_alone() {  # $1: the table's label; the rest: doctest filters
  local label=$1 left rc first
  shift
  left=$((until - $(date +%s)))
  if ((left <= 0)); then
    echo "| $label | not run (out of time) | |"
    return
  fi
  echo "==== $label" >>"$log"
  timeout -k 5 $((left < 60 ? left : 60)) "$tests" --test-suite=gpu --no-version "$@" >>"$log.case" 2>&1
  rc=$?
  first=$(grep -m1 -E 'ERROR|error|CRASHED|exception' "$log.case" | cut -c1-200 | tr '|' '/')
  # A filter that matches nothing passes: say so rather than list a pass.
  grep -qE 'test cases: *[1-9]' "$log.case" || first="ran no test case (filter or skip) ${first}"
  cat "$log.case" >>"$log" && rm -f "$log.case"
  echo "| $label | $rc | $first |"
}

echo "| gpu test case, alone | exit | first error |"
echo "| --- | ---: | --- |"
kernel_families="every kernel family against the float64 reference"
# The subcases' names, from the source (the working tree travels with the bundle).
subcases=$(sed -n '/^inline void check_backend_kernels/,/^}/p' tests/backend_checks.h |
  sed -n 's/.*SUBCASE("\([^"]*\)").*/\1/p')
"$tests" --test-suite=gpu --list-test-cases --no-version 2>/dev/null | grep -vE '^\[doctest\]|^=+$' |
  while IFS= read -r name; do
    if [[ "$name" == "$kernel_families" && -n "$subcases" ]]; then
      while IFS= read -r sub; do
        run_alone "$name: $sub" --test-case="$(escape "$name")" --subcase="$(escape "$sub")"
      done <<<"$subcases"
    else
      run_alone "$name" --test-case="$(escape "$name")"
    fi
  done
