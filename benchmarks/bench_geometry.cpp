// The layer analysis of the geometry probe (center structure, then capacity, radius and
// dimension of every class manifold, n_t = 200, κ = 0) on the study's shapes: 10 classes × 200
// points in 200 and in 784 dimensions (the MNIST MLP's layers), 47 classes × 200 points in 512
// (EMNIST). Synthetic Gaussian clouds around random centers.
#include <benchmark/benchmark.h>

#include "engine/probe/geometry.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace {

using namespace gs;

struct Layer {
  std::vector<double> x;
  std::vector<std::int32_t> y;
};

Layer clouds(std::int64_t classes, std::int64_t per_class, std::int64_t features) {
  Generator g(1, Stream::data);
  Tensor centers = Tensor::empty(Shape{classes * features}, DType::f64);
  Tensor noise = Tensor::empty(Shape{classes * per_class * features}, DType::f64);
  g.normal(centers, 0, 1);
  g.normal(noise, 0, 0.5);
  auto c = centers.to_vector(), e = noise.to_vector();
  Layer l;
  for (std::int64_t k = 0; k < classes; ++k)
    for (std::int64_t p = 0; p < per_class; ++p) {
      for (std::int64_t f = 0; f < features; ++f) l.x.push_back(c[k * features + f] + e[(k * per_class + p) * features + f]);
      l.y.push_back(static_cast<std::int32_t>(k));
    }
  return l;
}

void BM_geometry_layer(benchmark::State& state) {
  const std::int64_t classes = state.range(0), features = state.range(1);
  Layer l = clouds(classes, 200, features);
  double capacity = 0;
  for (auto _ : state) capacity = probe::analyze_layer(l.x, features, l.y, classes, 0.0, 200, 0).capacity;
  state.counters["capacity"] = capacity;
}

}  // namespace

BENCHMARK(BM_geometry_layer)->Args({10, 200})->Args({10, 784})->Args({47, 512})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
