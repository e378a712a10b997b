// The NTK probe (all layers' per-logit kernels and the distance to a second kernel) on the
// study's MNIST MLP, against the per-logit loop it replaces (one backward per sample and logit,
// J stacked, J Jᵀ), measured in the same run. The loop runs on subsets of 16 and 32 points; its
// backward passes grow linearly with n and its J Jᵀ quadratically, so scaling its time linearly
// to 256 points (the counter scale_to_256) gives a lower bound for the full probe set.
#include <benchmark/benchmark.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/probe/ntk.h"
#include "engine/probe/ntk_stream.h"
#include "engine/init.h"
#include "engine/rng.h"
#include "models/models.h"

namespace {

using namespace gs;

struct Setup {
  std::shared_ptr<nn::Sequential> net;
  Tensor x;
};

Setup mnist_mlp(std::int64_t n) {
  Generator gen(0);
  Setup s{models::make_mlp({{784, 200, 200, 10}, nn::Activation::relu, 8.0, 1.0}, gen), Tensor::empty(Shape{n, 784})};
  Generator data(1, Stream::data);
  data.uniform(s.x, 0, 1);
  return s;
}

void BM_ntk_mnist_mlp_256(benchmark::State& state) {
  Setup s = mnist_mlp(256);
  probe::NtkOptions options;
  options.tile_samples = state.range(0);
  Tensor k0 = probe::empirical_ntk(*s.net, s.x, options).kernel;
  for (auto _ : state) {
    auto k = probe::empirical_ntk(*s.net, s.x, options);
    benchmark::DoNotOptimize(probe::kernel_distance(k0, k.kernel));
  }
  // Gram FLOPs: D Dᵀ for the two hidden layers (2·(nC)²·200 each) and H Hᵀ for all three.
  const double nc = 2560, flops = 2 * (2 * nc * nc * 200) + 2 * 256.0 * 256 * (784 + 200 + 200);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

// The study's CNN on 256 MNIST-sized points: the convolutions' rows are their per-(sample,
// logit) weight gradients (conv2: 18,496 values), so K costs about 2560² · 18,496 multiply-adds.
void BM_ntk_mnist_cnn_256(benchmark::State& state) {
  Generator gen(0);
  auto net = models::make_cnn({1, 28, 10, 1.0, 1.0}, gen);
  Tensor x = Tensor::empty(Shape{256, 1, 28, 28});
  Generator data(1, Stream::data);
  data.uniform(x, 0, 1);
  Tensor k0 = probe::empirical_ntk(*net, x).kernel;
  for (auto _ : state) {
    auto k = probe::empirical_ntk(*net, x);
    benchmark::DoNotOptimize(probe::kernel_distance(k0, k.kernel));
  }
}

// The EMNIST MLP (784-128-512-128-47) on 1280 points: K would be 60160 × 60160 (14.5 GB in f32),
// so the probe compares two kernels (initial weights and weights ×1.01) tile by tile from their
// factors without holding either. Counts the Jacobian passes of both and the streamed comparison:
// by the probe's own choice (argument 0: per-sample products for this MLP, ntk_products.h), or
// from tiles of the kernels with the argument's samples a side (16 is the CPU's default here).
Setup emnist_mlp_1280() {
  Generator gen(0);
  Setup s{models::make_mlp({{784, 128, 512, 128, 47}, nn::Activation::relu, 10.0, 1.0}, gen), Tensor::empty(Shape{1280, 784})};
  Generator data(1, Stream::data);
  data.uniform(s.x, 0, 1);
  return s;
}

void BM_ntk_distance_emnist_mlp_1280_streamed(benchmark::State& state) {
  auto [net, x] = emnist_mlp_1280();
  for (auto _ : state) {
    auto before = probe::kernel_factors(*net, x);
    init::scale_parameters(*net, 1.01);
    auto after = probe::kernel_factors(*net, x);
    init::scale_parameters(*net, 1 / 1.01);
    const auto method = state.range(0) == 0 ? probe::StreamedMethod::cheaper : probe::StreamedMethod::tiles;
    benchmark::DoNotOptimize(probe::compare_streamed(before, after, state.range(0), method).distance());
  }
}

// A run's streamed probe step for one probe set, its comparisons only: the current kernel against
// the step-0 and the previous ones, whose ‖K‖² the run kept from the steps that made them.
// Argument 0: the probe's own choice (per-sample products here); 1: tiles; 2: tiles in f64, the
// reference for the distances the counters print (--benchmark_format=json prints every digit).
void BM_ntk_probe_step_emnist_mlp_1280(benchmark::State& state) {
  auto [net, x] = emnist_mlp_1280();
  const auto method = state.range(0) == 0 ? probe::StreamedMethod::cheaper : probe::StreamedMethod::tiles;
  if (state.range(0) == 2) {
    net->to(DType::f64);
    x = x.to(DType::f64);
  }
  auto initial = probe::kernel_factors(*net, x);
  init::scale_parameters(*net, 1.01);
  auto previous = probe::kernel_factors(*net, x);
  init::scale_parameters(*net, 1.01);
  const auto current = probe::kernel_factors(*net, x);
  const std::vector<const probe::KernelFactors*> none;
  initial.norm2 = probe::compare_streamed(initial, none, 0, method).norm2;
  previous.norm2 = probe::compare_streamed(previous, none, 0, method).norm2;
  probe::StreamedSums sums;
  for (auto _ : state) sums = probe::compare_streamed(current, {&initial, &previous}, 0, method);
  // The distances, so that the methods can be compared.
  state.counters["to_init_x1e6"] = 1e6 * (1 - sums.inner[0] / std::sqrt(sums.norm2 * sums.norm2_ref[0]));
  state.counters["to_previous_x1e6"] = 1e6 * (1 - sums.inner[1] / std::sqrt(sums.norm2 * sums.norm2_ref[1]));
}

// What a streamed probe step computes besides its distances, on the same EMNIST factors: each
// layer's trace kernel (their traces give the layers' shares, their sum the trace kernel), the
// output layer's Gram and the alignment's numerator Yᵀ K Y. n × n work, never n·C × n·C.
void BM_ntk_companions_emnist_mlp_1280(benchmark::State& state) {
  auto [net, x] = emnist_mlp_1280();
  std::vector<std::int32_t> y;
  for (std::int32_t i = 0; i < 1280; ++i) y.push_back(i % 47);
  const Tensor labels = Tensor::from(y, Shape{1280});
  const auto factors = probe::kernel_factors(*net, x);
  for (auto _ : state) {
    const auto layers = probe::layer_trace_kernels(factors);
    benchmark::DoNotOptimize(probe::add_kernels(layers).raw());
    benchmark::DoNotOptimize(probe::output_gram(factors).raw());
    benchmark::DoNotOptimize(probe::target_quadratic_form(factors, labels));
  }
}

// The per-logit loop on n points; times scale_to_256 is a lower bound for the full set.
void BM_per_logit_loop_mnist_mlp(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Setup s = mnist_mlp(n);
  for (auto _ : state) benchmark::DoNotOptimize(probe::brute_force_ntk(*s.net, s.x).raw());
  state.counters["scale_to_256"] = 256.0 / static_cast<double>(n);
}

}  // namespace

BENCHMARK(BM_ntk_mnist_mlp_256)->Arg(32)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ntk_mnist_cnn_256)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_ntk_distance_emnist_mlp_1280_streamed)->Arg(0)->Arg(8)->Arg(16)->Arg(24)->Arg(32)->Arg(64)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_ntk_probe_step_emnist_mlp_1280)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_ntk_companions_emnist_mlp_1280)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_per_logit_loop_mnist_mlp)->Arg(16)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
