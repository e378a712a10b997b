// The grokscope command line. Until the data readers land, `demo` trains the study's MLP shape
// on a synthetic task and reports its progress; `info` says what this build can run on.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "kernels/backend.h"
#include "models/models.h"

namespace {

using namespace gs;

struct Synthetic {
  Tensor x, labels;
};

// Ten Gaussian classes in 784 dimensions, the shape of flattened MNIST.
Synthetic make_synthetic(std::int64_t n, std::uint64_t seed) {
  Generator g(seed, Stream::data);
  Tensor centres = Tensor::empty(Shape{10, 784}, DType::f64);
  g.normal(centres, 0, 0.1);
  Tensor noise = Tensor::empty(Shape{n, 784}, DType::f64);
  g.normal(noise, 0, 1.0);
  auto c = centres.to_vector(), e = noise.to_vector();
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<std::int32_t>(g.below(10));
    for (int d = 0; d < 784; ++d) e[i * 784 + d] += c[y[i] * 784 + d];
  }
  return {Tensor::from(e, Shape{n, 784}, DType::f32), Tensor::from(y, Shape{n})};
}

int run_demo(std::int64_t steps, std::uint64_t seed, double init_scale) {
  Synthetic train = make_synthetic(1000, seed), test = make_synthetic(2000, seed + 1);
  Generator gen(seed, Stream::init);
  auto net = models::make_mlp({.widths = {784, 200, 200, 10}, .init_scale = init_scale}, gen);
  auto opt = optim::AdamW(net->parameters(), {.lr = 1e-3, .weight_decay = 0.01});
  Tensor train_targets = ops::one_hot(train.labels, 10);
  Generator shuffle(seed, Stream::shuffle);
  std::vector<std::int64_t> order;
  const std::int64_t batch = 200;
  std::size_t cursor = 0;
  auto start = std::chrono::steady_clock::now();
  fmt::print("demo: MLP 784-200-200-10, init x{}, AdamW lr 1e-3 wd 0.01, MSE, synthetic 10-class data "
             "(1000 train, 2000 test)\n",
             init_scale);
  for (std::int64_t step = 1; step <= steps; ++step) {
    if (cursor + batch > order.size()) {
      order = shuffle.permutation(1000);
      cursor = 0;
    }
    std::vector<double> xb;
    std::vector<std::int32_t> yb;
    auto xv = train.x.data<float>();
    auto yv = train.labels.data<std::int32_t>();
    for (std::int64_t i = 0; i < batch; ++i) {
      std::int64_t r = order[cursor + i];
      xb.insert(xb.end(), xv + r * 784, xv + (r + 1) * 784);
      yb.push_back(yv[r]);
    }
    cursor += batch;
    Tensor xt = Tensor::from(xb, Shape{batch, 784}), yt = Tensor::from(yb, Shape{batch});
    opt.zero_grad();
    Tensor loss = ops::mse_loss(net->forward(xt), ops::one_hot(yt, 10));
    loss.backward();
    opt.step();
    if (step % 100 == 0 || step == steps) {
      NoGrad no_tape;
      const double train_acc = ops::accuracy(net->forward(train.x), train.labels);
      const double test_acc = ops::accuracy(net->forward(test.x), test.labels);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print("step {:>6}  loss {:.5f}  train acc {:.3f}  test acc {:.3f}  {:.0f} steps/s\n", step, loss.item(),
                 train_acc, test_acc, static_cast<double>(step) / seconds);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"grokscope: train networks and watch their NTK and representational geometry"};
  app.require_subcommand(1);

  auto* info = app.add_subcommand("info", "what this build can run on");
  auto* demo = app.add_subcommand("demo", "train the study's MLP on a synthetic 10-class task");
  std::int64_t steps = 2000;
  std::uint64_t seed = 0;
  double init_scale = 1.0;
  demo->add_option("--steps", steps, "training steps")->check(CLI::PositiveNumber);
  demo->add_option("--seed", seed, "seed for data, initialization and batch order");
  demo->add_option("--init-scale", init_scale, "multiplies every initial parameter");

  CLI11_PARSE(app, argc, argv);
  try {
    if (info->parsed()) {
      fmt::print("grokscope: cpu backend (OpenBLAS); cuda: {}\n",
                 gs::kernels::cuda_available() ? "available" : gs::kernels::cuda_unavailable_reason());
      return 0;
    }
    if (demo->parsed()) return run_demo(steps, seed, init_scale);
  } catch (const gs::Error& e) {
    fmt::print(stderr, "grokscope: {}\n", e.what());
    return 1;
  }
  return 0;
}
