// One full training step (forward, backward, AdamW) of the study's MLPs and CNN on the CPU.
// tools/bench_vs_torch.sh runs this and the same steps in PyTorch and prints the ratio.
#include <benchmark/benchmark.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "models/models.h"

namespace {

using namespace gs;

// Multiply-adds of forward + backward for a dense stack: forward 2·n·Σ in·out FLOPs, backward
// twice that except the input gradient of the first layer, which training never needs.
double step_flops(const std::vector<std::int64_t>& widths, std::int64_t batch) {
  double fwd = 0, first = 0;
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    const double f = 2.0 * static_cast<double>(batch * widths[i] * widths[i + 1]);
    fwd += f;
    if (i == 0) first = f;
  }
  return fwd + 2 * fwd - first;
}

void train_step(benchmark::State& state, std::vector<std::int64_t> widths, std::int64_t batch, bool mse) {
  Generator gen(0);
  auto net = models::make_mlp({.widths = widths, .init_scale = 8.0}, gen);
  auto opt = optim::AdamW(net->parameters(), {.lr = 1e-3, .weight_decay = 0.01});
  Generator data(1, Stream::data);
  Tensor x = Tensor::empty(Shape{batch, widths.front()});
  data.uniform(x, 0, 1);
  std::vector<std::int32_t> y(static_cast<std::size_t>(batch));
  for (auto& v : y) v = static_cast<std::int32_t>(data.below(static_cast<std::uint64_t>(widths.back())));
  Tensor labels = Tensor::from(y, Shape{batch});
  for (auto _ : state) {
    opt.zero_grad();
    Tensor out = net->forward(x);
    Tensor loss = mse ? ops::mse_one_hot_loss(out, labels) : ops::cross_entropy(out, labels);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.raw());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(step_flops(widths, batch) * static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate);
}

void BM_mlp_784_200_200_10_batch200_mse(benchmark::State& state) { train_step(state, {784, 200, 200, 10}, 200, true); }
void BM_mlp_784_128_512_128_47_batch128_ce(benchmark::State& state) {
  train_step(state, {784, 128, 512, 128, 47}, 128, false);
}

// The study's CNN (models::make_cnn: two 3×3 convolutions with 32 and 64 filters, max-pooling,
// 3136-128-10) on MNIST-sized images, cross-entropy. FLOPs: the convolutions' and dense layers'
// multiply-adds, forward ×3 except the first convolution's input gradient.
void BM_cnn_mnist_batch64_ce(benchmark::State& state) {
  constexpr std::int64_t batch = 64;
  Generator gen(0);
  auto net = models::make_cnn({}, gen);
  auto opt = optim::AdamW(net->parameters(), {.lr = 1e-3, .weight_decay = 0.01});
  Generator data(1, Stream::data);
  Tensor x = Tensor::empty(Shape{batch, 1, 28, 28});
  data.uniform(x, 0, 1);
  std::vector<std::int32_t> y(static_cast<std::size_t>(batch));
  for (auto& v : y) v = static_cast<std::int32_t>(data.below(10));
  Tensor labels = Tensor::from(y, Shape{batch});
  for (auto _ : state) {
    opt.zero_grad();
    Tensor loss = ops::cross_entropy(net->forward(x), labels);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.raw());
  }
  const double conv1 = 2.0 * 28 * 28 * 32 * 9, conv2 = 2.0 * 14 * 14 * 64 * 32 * 9;
  const double dense = 2.0 * (3136 * 128 + 128 * 10);
  const double per_image = 3 * (conv1 + conv2 + dense) - conv1;
  state.counters["GFLOP/s"] = benchmark::Counter(per_image * batch * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

// The AdamW step alone on the MNIST MLP's 199,210 parameters, with normal moment estimates, or
// with 6% idle weights (zero gradient) whose moments have decayed below 1.2e-38, as late in the
// study's runs. Shows what FlushSubnormals in kernels/cpu/cpu_backend.h buys.
void adamw_step(benchmark::State& state, bool subnormal) {
  Generator gen(0);
  auto net = models::make_mlp({.widths = {784, 200, 200, 10}}, gen);
  auto params = net->parameters();
  auto opt = optim::AdamW(params, {.lr = 1e-3, .weight_decay = 0.01});
  nn::NamedTensors moments;
  Generator fill(2, Stream::data);
  for (auto& [name, t] : opt.state()) {
    Tensor m = Tensor::empty(t.shape());
    fill.uniform(m, 1e-12, 1e-10);
    float* p = m.data<float>();
    for (std::int64_t i = 0; subnormal && i < m.numel(); i += 16) p[i] = 1e-39f;  // 6.25% subnormal
    moments.emplace_back(name, m);
  }
  opt.load_state(moments, 50000);
  for (auto& p : params) {
    Tensor g = Tensor::empty(p.shape());
    fill.uniform(g, -1e-6, 1e-6);
    float* q = g.data<float>();
    for (std::int64_t i = 0; subnormal && i < g.numel(); i += 16) q[i] = 0;  // the idle weights
    p.set_grad(g);
  }
  for (auto _ : state) opt.step();
  state.counters["bytes/s"] = benchmark::Counter(199210.0 * 4 * 7 * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
}
void BM_adamw_step_normal_moments(benchmark::State& state) { adamw_step(state, false); }
void BM_adamw_step_subnormal_moments(benchmark::State& state) { adamw_step(state, true); }

}  // namespace

BENCHMARK(BM_adamw_step_normal_moments)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_adamw_step_subnormal_moments)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_mlp_784_200_200_10_batch200_mse)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp_784_128_512_128_47_batch128_ce)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_cnn_mnist_batch64_ce)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
