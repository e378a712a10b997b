#!/usr/bin/env bash
# The GPU check: the `gpu` test suite (every CUDA kernel against the float64 reference, training
# steps and probes against the CPU) and bench_cuda (our GEMMs against cuBLAS, our convolutions
# against cuDNN, the training step eager and as one CUDA graph, the geometry probe of a layer),
# ending with a short summary. Two halves, because the GPU machine has nvcc, CMake and a Python
# with NVIDIA's wheels but none of the Debian packages grokscope builds against:
#
#   tools/gpu_check.sh --bundle   here (Debian, nvcc): build the cuda preset for sm_90 from a
#                                 clean build tree, and pack the binaries with every shared
#                                 library they load except glibc's into build/gpu-bundle.tar.gz
#                                 (about 20 MB; carry it to the GPU machine: it is git-ignored,
#                                 so name build/gpu-bundle.tar.gz among the paths to carry)
#   tools/gpu_check.sh            on the GPU machine: unpack that bundle (or, without one, try to
#                                 build there), find cuBLAS in the CUDA toolkit or the Python
#                                 wheels, run, and write summary.md and the logs to $OUT
#                                 (default build/gpu-check/). Under 8 minutes on an H200.
#
# Each step's output goes to its own log; a failing step is recorded and the next one still runs.
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
  git rev-parse HEAD >build/gpu-bundle/REVISION
  git status --porcelain --untracked-files=no | grep -q . && echo "(working tree had uncommitted changes)" >>build/gpu-bundle/REVISION
  ldd --version | head -1 >build/gpu-bundle/BUILT_WITH
  tar -C build -czf "$bundle_tar" gpu-bundle
  echo "gpu_check: bundle $(du -h "$bundle_tar" | cut -f1) at ${bundle_tar#$root/} (revision $(head -1 build/gpu-bundle/REVISION))"
  exit 0
fi

out="${OUT:-$root/build/gpu-check}"
mkdir -p "$out"
summary="$out/summary.md"
log() { echo "$*" | tee -a "$summary"; }
: >"$summary"
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
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  log "binaries: no bundle; building the cuda preset here (needs OpenBLAS, fmt, toml++, CLI11, doctest)"
  if cmake --preset cuda >"$out/build.log" 2>&1 && cmake --build --preset cuda >>"$out/build.log" 2>&1; then
    mkdir -p "$work/bin" && cp build/cuda/grokscope build/cuda/tests/grokscope_tests build/cuda/bench_cuda "$work/bin/"
  else
    log "build failed; see build.log (last lines below)"
    tail -5 "$out/build.log" | tee -a "$summary"
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
[[ -n "$cublas_dirs" ]] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$cublas_dirs"
log "cuBLAS / cuDNN searched in: ${cublas_dirs:-nowhere found}"

# 3. The gpu suite, then the benchmarks.
"$work/bin/grokscope" info 2>&1 | tee "$out/info.log" | tee -a "$summary"
timeout 300 "$work/bin/grokscope_tests" --test-suite=gpu --no-version >"$out/gpu_tests.log" 2>&1
tests_rc=$?
log ""
log "gpu tests (exit $tests_rc): $(grep -E 'test cases:|assertions:' "$out/gpu_tests.log" | tr -s ' ' | paste -sd ';' -)"
grep -qE 'test cases:' "$out/gpu_tests.log" || head -3 "$out/gpu_tests.log" | sed 's/^/    /' | tee -a "$summary"
grep -E 'ERROR|error' "$out/gpu_tests.log" | head -20 | sed 's/^/    /' | tee -a "$summary"
log ""
timeout 240 "$work/bin/bench_cuda" >"$out/bench_cuda.md" 2>&1
log "bench_cuda (exit $?):"
cat "$out/bench_cuda.md" | tee -a "$summary"
echo
echo "gpu_check: summary and logs in $out"
exit $tests_rc
