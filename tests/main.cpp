// The test runner: doctest, plus two rules of ours: a run of only the gpu suite on a machine
// without a usable CUDA device, or of only the report_figures suite where Python has no
// matplotlib, exits 77, which ctest reports as skipped, after saying why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/allocator.h"
#include "kernels/backend.h"

int main(int argc, char** argv) {
  // Line by line even into a file: a suite stopped at a time limit (tools/gpu_check.sh) keeps
  // every failure and finished case it printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--test-suite=gpu" && !gs::kernels::cuda_available()) {
      std::printf("gpu suite skipped: %s\n", gs::kernels::cuda_unavailable_reason());
      return 77;
    }
    if (std::string(argv[i]) == "--test-suite=report_figures" &&
        std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) {
      std::printf("report_figures suite skipped: /usr/bin/python3 has no matplotlib (tools/setup.sh installs it)\n");
      return 77;
    }
  }
  // Every tensor a test allocates starts as NaN bytes, so that an op that leaves part of its
  // output unwritten fails its test instead of passing on stale values.
  gs::set_allocation_poisoning(true);
  doctest::Context context(argc, argv);
  return context.run();
}
