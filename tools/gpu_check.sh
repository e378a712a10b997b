#!/usr/bin/env bash
# The GPU check: the `gpu` test suite (every CUDA kernel against the float64 reference, training
# steps and probes against the CPU), bench_cuda (our GEMMs against cuBLAS, the optional TF32
# tensor-core GEMM against cuBLAS's TF32 mode, our convolutions against cuDNN, the training step eager and as one CUDA graph, the geometry probe of a layer,
# the NTK probe of an EMNIST probe set), each kernel of a replayed training step timed by Nsight
# Compute, and the whole MNIST study timed on the GPU, ending with a short summary. Two halves, because the GPU machine has nvcc, CMake and a Python
# with NVIDIA's wheels but none of the Debian packages grokscope builds against:
#
#   tools/gpu_check.sh --bundle   here (Debian, nvcc): build the cuda preset for sm_90 from a
#                                 clean build tree, and pack the binaries with every shared
#                                 library they load except glibc's, and MNIST gzipped, into
#                                 build/gpu-bundle.tar.gz (about 35 MB; carry it to the GPU
#                                 machine: it is git-ignored, so name it among the paths to carry)
#   tools/gpu_check.sh            on the GPU machine: unpack that bundle (or, without one, try to
#                                 build there), find cuBLAS in the CUDA toolkit or the Python
#                                 wheels, run, and write summary.md and the logs to
#                                 build/gpu-check/. With $OUT set, $OUT receives two files only,
#                                 summary.md and logs.tar.gz (every log and the study's CSVs),
#                                 both refreshed after each step, so that a run stopped from
#                                 outside still hands back what it had done: the machines that
#                                 run it return few files from $OUT.
#
# Under 8 minutes on an H200 whatever happens: each step is stopped at its limit and killed 10 s
# later if it has not stopped (150 s for the tests; 90 more to run each case alone when they
# fail, or 60 for compute-sanitizer when they pass; 180 for the benchmarks, 40 for Nsight Compute
# on one replayed training step, 150 for the study), and no limit reaches past what the steps
# after it need of the whole budget (GPU_CHECK_SECONDS, 450 s from the start). Each step's output
# goes to its own log; a failing step is recorded and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bundle_tar="$root/build/gpu-bundle.tar.gz"

if [[ "${1:-}" == "--bundle" ]]; then
  set -e
  export PATH="$PATH:/usr/local/cuda/bin"
  rm -rf build/cuda build/gpu-bundle
  cmake --preset cuda -DGROKSCOPE_WERROR=ON >/dev/null
  cmake --build --preset cuda --target grokscope grokscope_tests bench_cuda
  mkdir -p build/gpu-bundle/bin build/gpu-bundle/lib
  cp build/cuda/grokscope build/cuda/tests/grokscope_tests build/cuda/bench_cuda build/gpu-bundle/bin/
  strip --strip-debug build/gpu-bundle/bin/*
  # Every library the loader resolves, except glibc's own (the GPU machine has its glibc).
  for bin in build/gpu-bundle/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}'
  done | sort -u | grep -vE '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" build/gpu-bundle/lib/; done
  # MNIST for the study's timing (step 4 below), gzipped: the reader takes .gz as it is.
  if [[ -f data/cache/mnist/train-images-idx3-ubyte ]]; then
    mkdir -p build/gpu-bundle/data/mnist
    for f in data/cache/mnist/*-ubyte; do gzip -9c "$f" >"build/gpu-bundle/data/mnist/$(basename "$f").gz"; done
  else
    echo "gpu_check: no data/cache/mnist (run data/fetch.sh first): the bundle leaves out the study's timing"
  fi
  git rev-parse HEAD >build/gpu-bundle/REVISION
  [[ -z "$(git status --porcelain --untracked-files=no)" ]] || echo "(working tree had uncommitted changes)" >>build/gpu-bundle/REVISION
  ldd --version | sed -n 1p >build/gpu-bundle/BUILT_WITH  # sed reads it all: no SIGPIPE under pipefail
  # The newest glibc symbol version each file needs (libstdc++ here: 2.36). The GPU machine's
  # glibc may be older; there, a library that needs more than it has is left out for the
  # machine's own (below), and a binary that does is reported.
  for f in build/gpu-bundle/bin/* build/gpu-bundle/lib/*; do
    echo "${f#build/gpu-bundle/} $(objdump -T "$f" | { grep -o 'GLIBC_[0-9.]*' || true; } | sed 's/GLIBC_//' | sort -uV | sed -n '$p')"
  done >build/gpu-bundle/GLIBC_NEEDS
  tar -C build -czf "$bundle_tar" gpu-bundle
  echo "gpu_check: bundle $(du -h "$bundle_tar" | cut -f1) at ${bundle_tar#"$root"/} (revision $(head -1 build/gpu-bundle/REVISION))"
  exit 0
fi

logs="$root/build/gpu-check"
rm -rf "$logs" && mkdir -p "$logs"
summary="$logs/summary.md"
log() { echo "$*" | tee -a "$summary"; }
: >"$summary"
# $OUT gets the summary and one archive of the logs, replaced whole (written aside, then moved).
publish() {
  [[ -n "${OUT:-}" ]] || return 0
  mkdir -p "$OUT"
  cp "$summary" "$OUT/.summary.md" && mv "$OUT/.summary.md" "$OUT/summary.md"
  tar -C "$root/build" -czf "$OUT/.logs.tar.gz" gpu-check && mv "$OUT/.logs.tar.gz" "$OUT/logs.tar.gz"
}
# The whole check's budget: a step's limit is its own, or less where the steps after it need the
# rest (limit MAX RESERVE prints min(MAX, seconds left − RESERVE), at least 10).
deadline=$(($(date +%s) + ${GPU_CHECK_SECONDS:-450}))
limit() {
  local left=$((deadline - $(date +%s) - $2))
  ((left < $1)) || left=$1
  ((left >= 10)) || left=10
  echo "$left"
}
log "# grokscope GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
log ""
{
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
  echo "glibc here: $(ldd --version 2>&1 | head -1)"
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo '```'
} | tee -a "$summary"

# 1. The binaries: the carried bundle, or a build here.
work="$root/build/gpu-bundle"
if [[ -f "$bundle_tar" ]]; then
  rm -rf "$work" && tar -C "$root/build" -xzf "$bundle_tar"
  log "binaries: the bundle built at $(head -1 "$work/REVISION") ($(cat "$work/BUILT_WITH"))"
  # A carried library that needs a newer glibc than this machine's would stop every binary from
  # loading: leave it out, so that the machine's own serves (its libstdc++ must then be of GCC
  # 11 or later, GLIBCXX_3.4.29).
  glibc_here=$(ldd --version 2>&1 | sed -n '1s/.* \([0-9][0-9.]*\)$/\1/p')
  while read -r file needs; do
    [[ -n "$needs" && -n "$glibc_here" && "$needs" != "$glibc_here" ]] || continue
    [[ "$(printf '%s\n%s\n' "$needs" "$glibc_here" | sort -V | sed -n '$p')" == "$needs" ]] || continue
    case "$file" in
      lib/*) mkdir -p "$work/lib-left-out" && mv "$work/$file" "$work/lib-left-out/"
             log "binaries: $file needs glibc $needs, this machine has $glibc_here: its own is used instead" ;;
      *) log "binaries: $file needs glibc $needs, this machine has $glibc_here: it will not load (build here instead)" ;;
    esac
  done < <(cat "$work/GLIBC_NEEDS" 2>/dev/null)
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  log "binaries: no bundle; building the cuda preset here (needs OpenBLAS, fmt, toml++, CLI11, doctest)"
  if cmake --preset cuda >"$logs/build.log" 2>&1 && cmake --build --preset cuda >>"$logs/build.log" 2>&1; then
    mkdir -p "$work/bin" && cp build/cuda/grokscope build/cuda/tests/grokscope_tests build/cuda/bench_cuda "$work/bin/"
  else
    log "build failed; see build.log (last lines below)"
    tail -5 "$logs/build.log" | tee -a "$summary"
    exit 1
  fi
fi

# 2. cuBLAS and cuDNN for the baselines: the toolkit's, else a pip wheel's (nvidia/*/lib).
cublas_dirs=$(
  { ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null
    python3 - <<'EOF' 2>/dev/null
import glob, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
for r in roots:
    for d in glob.glob(r + "/nvidia/*/lib"):
        print(d)
EOF
  } | while read -r d; do
    { compgen -G "$d/libcublas.so*" || compgen -G "$d/libcudnn.so*"; } >/dev/null && echo "$d"
  done | sort -u | paste -sd: -)
[[ -n "$cublas_dirs" ]] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$cublas_dirs"
log "cuBLAS / cuDNN searched in: ${cublas_dirs:-nowhere found}"

# 3. The gpu suite, then the benchmarks.
"$work/bin/grokscope" info 2>&1 | tee "$logs/info.log" | tee -a "$summary"
# --duration: a line per finished case, so that a suite stopped at its limit shows where it hung.
publish
# The step limits: the tests first, leaving 60 s for the benchmarks, 20 for the profiler and 125 for
# the study.
tests_limit=$(limit 150 205)
timeout -k 10 "$tests_limit" "$work/bin/grokscope_tests" --test-suite=gpu --no-version --duration=true >"$logs/gpu_tests.log" 2>&1
tests_rc=$?
log ""
log "gpu tests (exit $tests_rc; 124: stopped at $tests_limit s): $(grep -E 'test cases:|assertions:' "$logs/gpu_tests.log" | tr -s ' ' | paste -sd ';' -)"
grep -qE 'test cases:' "$logs/gpu_tests.log" || head -3 "$logs/gpu_tests.log" | sed 's/^/    /' | tee -a "$summary"
grep -E 'ERROR|error' "$logs/gpu_tests.log" | head -20 | sed 's/^/    /' | tee -a "$summary"
# A fault can poison the rest of the suite's process: each case again, alone (tools/gpu_triage.sh).
if [[ $tests_rc -ne 0 && $tests_rc -ne 77 ]]; then
  log ""
  tools/gpu_triage.sh "$work/bin/grokscope_tests" "$(limit 90 205)" "$logs/gpu_tests_alone.log" | tee -a "$summary"
fi
# A suite that passed gets 60 s for NVIDIA's compute-sanitizer on the kernel families:
# reads and writes outside an allocation (memcheck), shared-memory races between a block's
# threads (racecheck) and barriers not reached by every thread (synccheck), on the device's own
# scheduling, which the emulator's fibers only approximate.
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
if [[ $tests_rc -eq 0 && -n "$sanitizer" ]]; then
  tool_limit=$(($(limit 60 205) / 3))
  log ""
  log "| compute-sanitizer on \"every kernel family\" | exit (124: stopped at $tool_limit s) | summary |"
  log "| --- | ---: | --- |"
  for tool in memcheck racecheck synccheck; do
    timeout -k 5 "$tool_limit" "$sanitizer" --tool "$tool" --error-exitcode 3 --print-limit 20 "$work/bin/grokscope_tests" \
      --test-suite=gpu --test-case="every kernel family against the float64 reference" --no-version >"$logs/sanitizer_$tool.log" 2>&1
    rc=$?
    said=$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$logs/sanitizer_$tool.log" ||
      grep -m1 -i -E 'not supported|error' "$logs/sanitizer_$tool.log")
    log "| $tool | $rc | $(tr '|' '/' <<<"$said") |"
    # Under gVisor the sanitizer refuses the device ("Device not supported"): the others would too.
    if grep -q -i 'not supported' "$logs/sanitizer_$tool.log"; then
      log "compute-sanitizer cannot use this device (gVisor machines refuse it); the other tools skipped"
      break
    fi
  done
elif [[ $tests_rc -eq 0 ]]; then
  log "compute-sanitizer: not found here; skipped"
fi
publish
log ""
bench_limit=$(limit 180 165)
timeout -k 10 "$bench_limit" "$work/bin/bench_cuda" >"$logs/bench_cuda.md" 2>&1
log "bench_cuda (exit $?; 124: stopped at $bench_limit s):"
tee -a "$summary" <"$logs/bench_cuda.md"

# 3b. Where a replayed step's time goes: each kernel of the MNIST MLP's step, timed alone by
# Nsight Compute (its clocks left alone), against the replayed step's time in bench_cuda's table:
# the difference is what launching and waiting between kernels costs, which overlapped launches
# can shorten and faster kernels cannot. (On gVisor machines ncu cannot read the counters.)
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
if [[ -n "$ncu" ]]; then
  publish
  ncu_limit=$(limit 40 125)
  timeout -k 5 "$ncu_limit" "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    "$work/bin/bench_cuda" --replay-step >"$logs/ncu_step.log" 2>&1
  ncu_rc=$?
  log ""
  log "Nsight Compute on one replay of the MLP step (exit $ncu_rc; 124: stopped at $ncu_limit s):"
  python3 tools/ncu_step_table.py "$logs/ncu_step.log" 2>&1 | tee -a "$summary"
fi

# 4. The whole MNIST study on the GPU (target ≤ 2 minutes): the four MNIST recipes, 100k steps
# each with their probes, run side by side on the one GPU. Stopped at 150 s (or what is left of
# the budget); a stopped run keeps what it wrote, and its last logged step says how far it got.
# The runs are written outside the logs (checkpoints are large); their CSVs and run.json are
# copied there.
publish
log ""
study_limit=$(limit 150 0)
mnist="$work/data/mnist"
[[ -d "$mnist" ]] || mnist="$root/data/cache/mnist"
if [[ -d "$mnist" ]]; then
  study="$root/build/gpu-study"
  rm -rf "$study" && mkdir -p "$study" "$logs/study"
  start=$(date +%s%N)
  seconds_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}'; }
  # A quarter of the cores each for the host's share (center structure, pairwise NTK matrix).
  threads=$(( $(nproc) / 4 > 0 ? $(nproc) / 4 : 1 ))
  for recipe in "$root"/experiments/mnist-*.toml; do
    name=$(basename "$recipe" .toml)
    ( s=$(date +%s%N)
      OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads timeout -k 10 "$study_limit" "$work/bin/grokscope" train "$recipe" --device cuda --quiet --out "$study/$name" \
        --set data.path="$mnist" >"$logs/study/$name.log" 2>&1
      echo "$? $(seconds_since "$s")" >"$study/$name.status" ) &
  done
  wait
  log "the MNIST study on the GPU, 4 recipes side by side (target ≤ 2 minutes), MNIST from ${mnist#"$root"/}: $(seconds_since "$start") s wall clock"
  log ""
  log "| recipe | exit (124: stopped at $study_limit s) | seconds | last logged step | probe steps | test accuracy there | training, evaluation, NTK probe, geometry probe (s, run.json) |"
  log "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
  for recipe in "$root"/experiments/mnist-*.toml; do
    name=$(basename "$recipe" .toml)
    read -r rc secs <"$study/$name.status"
    last=$(tail -1 "$study/$name/metrics.csv" 2>/dev/null | cut -d, -f1)
    probes=$(tail -n +2 "$study/$name/geometry.csv" 2>/dev/null | cut -d, -f1 | sort -u | wc -l)
    # The test accuracy's column, by its header.
    acc=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "test_accuracy") c = i} END {if (c) print $c}' \
      "$study/$name/metrics.csv" 2>/dev/null)
    # Where its time went, as run.json's "seconds" has it (one key per line there).
    split=$(for part in training evaluation ntk_probe geometry_probe; do
      sed -n "s/^ *\"$part\": \([0-9.e+-]*\),\{0,1\}$/\1/p" "$study/$name/run.json" 2>/dev/null | head -1 |
        awk '{printf "%.1f", $1}'
      echo -n " "
    done)
    log "| $name | $rc | $secs | ${last:-none} | $probes | ${acc:-none} | ${split% } |"
    mkdir -p "$logs/study/$name"
    cp "$study/$name"/{metrics.csv,ntk.csv,geometry.csv,run.json} "$logs/study/$name/" 2>/dev/null
  done
  # What the runs said besides their routine lines (a step not captured as a graph, an error).
  grep -hvE '^grokscope: (training .* into|done in|metrics in)|^  |^$' "$logs"/study/*.log | sort | uniq -c | head -10 |
    sed 's/^/    /' | tee -a "$summary"
else
  log "the MNIST study: skipped (no MNIST in the bundle or in data/cache/mnist)"
fi
publish
echo
echo "gpu_check: summary and logs in ${logs#"$root"/}${OUT:+; summary.md and logs.tar.gz in $OUT}"
exit $tests_rc
