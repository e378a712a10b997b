// bench_cuda's probe tables: the geometry probe of an EMNIST-sized layer on the GPU against the
// CPU, and the NTK probe of one EMNIST probe set on the GPU, each with its parts.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include "benchmarks/cuda/tables.h"
#include "benchmarks/cuda/timing.h"
#include "benchmarks/synthetic_layer.h"
#include "engine/probe/geometry.h"
#include "engine/probe/kernel_metrics.h"
#include "engine/probe/ntk_stream.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "models/models.h"

namespace gs::bench_cuda {

// The geometry probe of one EMNIST-sized layer (47 classes × 200 points, 512 features; Gaussian
// clouds around random centers, n_t = 200, κ = 0) on the GPU against the CPU, wall-clock medians of
// 3, with the parts of the median run. The center structure runs on the host in both.
void bench_geometry_layer() {
  const std::int64_t classes = 47, per_class = 200, features = 512;
  const bench::SyntheticLayer layer = bench::gaussian_clouds(classes, per_class, features);
  const auto& x = layer.x;
  const auto& y = layer.y;
  auto timed = [&](Device device, probe::LayerGeometry& out) {  // the median of 3 runs, and that run's result
    std::vector<std::pair<double, probe::LayerGeometry>> runs;
    for (int i = 0; i < 3; ++i) {
      const auto start = std::chrono::steady_clock::now();
      auto result = probe::analyze_layer(x, features, y, classes, 0.0, 200, 0, {}, device);
      runs.emplace_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), std::move(result));
    }
    std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out = runs[1].second;
    return runs[1].first;
  };
  probe::LayerGeometry on_gpu, on_cpu;
  const double gpu = timed(Device::cuda, on_gpu), cpu = timed(Device::cpu, on_cpu);
  double worst = 0;  // relative difference of the per-class results
  for (std::size_t k = 0; k < on_cpu.per_class.size(); ++k) {
    const auto &a = on_gpu.per_class[k], &b = on_cpu.per_class[k];
    for (auto [u, v] : {std::pair{a.capacity, b.capacity}, std::pair{a.radius, b.radius}, std::pair{a.dimension, b.dimension}})
      worst = std::max(worst, std::abs(u - v) / std::max(std::abs(v), 1e-300));
  }
  std::printf("\n| geometry probe, 47 classes × 200 points, 512 features | time per layer | CPU (%u threads) | ratio (CPU / GPU) | max relative difference |\n",
              std::thread::hardware_concurrency());
  std::printf("| --- | ---: | ---: | ---: | ---: |\n");
  std::printf("| the whole layer on the GPU (target ≤ 0.2 s) | %.1f ms | %.1f ms | %.2f | %.1e |\n", gpu * 1e3, cpu * 1e3,
              cpu / gpu, worst);
  const auto part = [&](const char* what, double probe::LayerGeometry::Seconds::*field) {
    const double g = on_gpu.seconds.*field, c = on_cpu.seconds.*field;
    std::printf("| %s | %.1f ms | %.1f ms | %.2f | |\n", what, g * 1e3, c * 1e3, c / g);
  };
  part("part: upload, class centers", &probe::LayerGeometry::Seconds::centers);
  part("part: center structure (host in both)", &probe::LayerGeometry::Seconds::structure);
  part("part: class manifolds", &probe::LayerGeometry::Seconds::manifolds);
  part("part: span coordinates, Gaussian vectors, anchors", &probe::LayerGeometry::Seconds::anchors);
}

// The NTK probe of one EMNIST probe set on the GPU, the run's streamed path: the study's EMNIST
// MLP (784-128-512-128-47) at 1280 points, the factors of the network now, its streamed comparison
// with two references (the initial and the previous kernel; here the factors of two other
// networks), and the companions (each layer's trace kernel, the output Gram, the alignment's
// numerator). Random weights and inputs: the time depends on the shapes only. Wall clock, each
// part ending when its results are on the host; the median of 3 runs (1 when a run takes > 10 s).
void bench_ntk_probe() {
  const std::int64_t n = 1280;
  const std::vector<std::int64_t> widths{784, 128, 512, 128, 47};
  auto network = [&](std::uint64_t seed) {
    Generator g(seed);
    auto net = models::make_mlp({.widths = widths, .init_scale = 10}, g);
    net->to(Device::cuda);
    return net;
  };
  Generator data(4, Stream::test);
  Tensor x = Tensor::empty(Shape{n, widths.front()}, DType::f32);
  data.uniform(x, 0, 1);
  x = x.to(Device::cuda);
  std::vector<std::int32_t> y;
  for (std::int64_t i = 0; i < n; ++i) y.push_back(static_cast<std::int32_t>(i % widths.back()));
  const Tensor labels = Tensor::from(y, Shape{n});
  auto init = network(11), previous = network(12), now = network(13);
  const auto f0 = probe::kernel_factors(*init, x), f1 = probe::kernel_factors(*previous, x);
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  struct Run {
    double total = 0, factors = 0, comparison = 0, companions = 0, distance = 0;
  };
  std::vector<Run> runs;
  for (int i = 0; i < 3 && (runs.empty() || runs.back().total < 10); ++i) {
    Run r;
    const auto start = clock::now();
    const auto f = probe::kernel_factors(*now, x);
    check(cudaDeviceSynchronize(), "factors");
    r.factors = since(start);
    const auto sums = probe::compare_streamed(f, {&f0, &f1});
    r.comparison = since(start) - r.factors;
    const auto traces = probe::layer_trace_kernels(f);
    const double trace = probe::trace(probe::add_kernels(traces));
    const Tensor output = probe::output_gram(f);
    const double quadratic = probe::target_quadratic_form(f, labels);
    r.total = since(start);
    r.companions = r.total - r.factors - r.comparison;
    r.distance = 1 - sums.inner[0] / std::sqrt(sums.norm2 * sums.norm2_ref[0]);
    if (!std::isfinite(trace + quadratic + output.to_vector()[0])) r.distance = NAN;
    runs.push_back(r);
  }
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.total < b.total; });
  const Run& r = runs[runs.size() / 2];
  std::printf("\n| NTK probe, EMNIST MLP 784-128-512-128-47, %lld points × 47 logits | time (median of %zu) |\n",
              static_cast<long long>(n), runs.size());
  std::printf("| --- | ---: |\n");
  std::printf("| one probe set: factors, distances to 2 kernels, companions (target ≤ 1 s) | %.3f s |\n", r.total);
  std::printf("| part: factors (forward, one-hot backward) | %.3f s |\n", r.factors);
  std::printf("| part: streamed comparison with 2 references (tiles of 64 points) | %.3f s |\n", r.comparison);
  std::printf("| part: companions (trace kernels, output Gram, alignment) | %.3f s |\n", r.companions);
  std::printf("| check: distance to the first reference (finite, in (0, 1)) | %.4f |\n", r.distance);
}

}  // namespace gs::bench_cuda
