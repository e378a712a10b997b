// The layer analysis of the geometry probe (center structure, then capacity, radius and
// dimension of every class manifold, n_t = 200, κ = 0) on the study's shapes: 10 classes × 200
// points in 200 and in 784 dimensions (the MNIST MLP's layers), 47 classes × 200 points in 512
// (EMNIST). Synthetic Gaussian clouds around random centers.
#include <benchmark/benchmark.h>

#include "benchmarks/synthetic_layer.h"
#include "engine/probe/geometry.h"

namespace {

using namespace gs;

void BM_geometry_layer(benchmark::State& state) {
  const std::int64_t classes = state.range(0), features = state.range(1);
  const bench::SyntheticLayer l = bench::gaussian_clouds(classes, 200, features);
  double capacity = 0;
  for (auto _ : state) capacity = probe::analyze_layer(l.x, features, l.y, classes, 0.0, 200, 0).capacity;
  state.counters["capacity"] = capacity;
}

}  // namespace

BENCHMARK(BM_geometry_layer)->Args({10, 200})->Args({10, 784})->Args({47, 512})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
