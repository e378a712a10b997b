// The test runner: doctest, plus one rule of ours: a run of only the gpu suite on a machine
// without a usable CUDA device exits 77, which ctest reports as skipped, after saying why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "kernels/backend.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--test-suite=gpu" && !gs::kernels::cuda_available()) {
      std::printf("gpu suite skipped: %s\n", gs::kernels::cuda_unavailable_reason());
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
