// End to end on the CPU: networks learn a small synthetic classification, deterministically.
#include "engine/optim.h"
#include "helpers.h"
#include "models/models.h"

using namespace gs;

namespace {
// Four classes in 8-D: class k is a Gaussian blob around a random centre.
struct Blobs {
  Tensor x, labels;
};
Blobs blobs(std::int64_t n, std::uint64_t seed) {
  Generator g(seed, Stream::test);
  Tensor centres = Tensor::empty(Shape{4, 8}, DType::f64);
  g.normal(centres, 0, 1);
  Tensor noise = Tensor::empty(Shape{n, 8}, DType::f64);
  g.normal(noise, 0, 0.6);
  auto c = centres.to_vector(), e = noise.to_vector();
  std::vector<double> x(static_cast<std::size_t>(n * 8));
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<std::int32_t>(i % 4);
    for (int d = 0; d < 8; ++d) x[i * 8 + d] = c[y[i] * 8 + d] + e[i * 8 + d];
  }
  return {Tensor::from(x, Shape{n, 8}, DType::f32), Tensor::from(y, Shape{n})};
}

std::vector<double> train_mlp(const Blobs& data, bool use_mse, int steps, double* final_accuracy) {
  Generator gen(7);
  auto net = models::make_mlp({.widths = {8, 32, 32, 4}}, gen);
  auto opt = optim::AdamW(net->parameters(), {.lr = 1e-2, .weight_decay = 0.01});
  Tensor targets = ops::one_hot(data.labels, 4);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor out = net->forward(data.x);
    Tensor loss = use_mse ? ops::mse_loss(out, targets) : ops::cross_entropy(out, data.labels);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  NoGrad no_tape;
  *final_accuracy = ops::accuracy(net->forward(data.x), data.labels);
  return losses;
}
}  // namespace

TEST_SUITE("train") {
  TEST_CASE("an MLP fits a synthetic classification to 100% training accuracy (CE and MSE)") {
    Blobs data = blobs(200, 1);
    for (bool mse : {false, true}) {
      CAPTURE(mse);
      double acc = 0;
      auto losses = train_mlp(data, mse, 400, &acc);
      CHECK(acc == 1.0);
      CHECK(losses.back() < 0.1 * losses.front());
    }
  }

  TEST_CASE("training is bit-identical for the same seed") {
    Blobs data = blobs(64, 2);
    double a1 = 0, a2 = 0;
    CHECK(train_mlp(data, false, 50, &a1) == train_mlp(data, false, 50, &a2));
  }

  TEST_CASE("the study's CNN reduces its loss on small images") {
    // Two classes of 12×12 images: a bright left half or a bright right half, plus noise.
    Generator g(3, Stream::test);
    const std::int64_t n = 32;
    Tensor noise = Tensor::empty(Shape{n, 1, 12, 12}, DType::f64);
    g.normal(noise, 0, 0.3);
    auto e = noise.to_vector();
    std::vector<std::int32_t> y(n);
    for (std::int64_t i = 0; i < n; ++i) {
      y[i] = static_cast<std::int32_t>(i % 2);
      for (int r = 0; r < 12; ++r)
        for (int c = 0; c < 12; ++c) e[(i * 12 + r) * 12 + c] += ((c < 6) == (y[i] == 0)) ? 1.0 : 0.0;
    }
    Tensor x = Tensor::from(e, Shape{n, 1, 12, 12}, DType::f32), labels = Tensor::from(y, Shape{n});
    Generator gen(4);
    auto net = models::make_cnn({.image_size = 12, .classes = 2}, gen);
    auto opt = optim::Adam(net->parameters(), {.lr = 1e-3});
    double first = 0, last = 0;
    for (int s = 0; s < 15; ++s) {
      opt.zero_grad();
      Tensor loss = ops::cross_entropy(net->forward(x), labels);
      loss.backward();
      opt.step();
      (s == 0 ? first : last) = loss.item();
    }
    CHECK(last < 0.5 * first);
    NoGrad no_tape;
    CHECK(ops::accuracy(net->forward(x), labels) == 1.0);
  }
}

#include "backend_checks.h"

TEST_SUITE("train") {
  TEST_CASE("the gpu suite's training comparison, run with the CPU on both sides") {
    test::check_training_matches_cpu(Device::cpu);
  }
}
