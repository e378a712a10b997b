#pragma once
// Every kernel family of a backend against the float64 reference, called through the backend
// interface on fresh random inputs with NaN-poisoned outputs and odd sizes. The gpu suite runs
// these on the CUDA backend; the ops_forward suite runs the very same checks on the CPU backend,
// so the checks themselves are exercised (and can fail) on every machine.
#include <algorithm>
#include <memory>

#include "backend_checks/conv.h"
#include "backend_checks/elementwise.h"
#include "backend_checks/gemm.h"
#include "backend_checks/loss.h"
#include "backend_checks/optim.h"
#include "backend_checks/probes.h"
#include "models/models.h"

namespace gs::test {

// Every family's checks on one backend.
inline void check_backend_kernels(Device d) {
  SUBCASE("gemm") { backend_checks::gemm(d); }
  SUBCASE("dense layer: GEMM, bias and activation") { backend_checks::dense_layer(d); }
  SUBCASE("dense layer: the backward pass in one call") { backend_checks::dense_layer_backward(d); }
  SUBCASE("activations") { backend_checks::activations(d); }
  SUBCASE("broadcasting and its sums") { backend_checks::broadcasting(d); }
  SUBCASE("rows, sums, axpby") { backend_checks::rows_and_sums(d); }
  SUBCASE("rows gathered by index") { backend_checks::gathered_rows(d); }
  SUBCASE("losses, argmax, counts") { backend_checks::losses(d); }
  SUBCASE("batched convolution and its gradients") { backend_checks::batched_convolution(d); }
  SUBCASE("convolution and pooling") { backend_checks::convolution_and_pooling(d); }
  SUBCASE("max pooling: ties, NaN, −∞") { backend_checks::pooling_choices(d); }
  SUBCASE("optimizers") { backend_checks::optimizers(d); }
  SUBCASE("NTK probe tiles") { backend_checks::ntk_tiles(d); }
  SUBCASE("geometry probe class manifolds") { backend_checks::layer_manifolds(d); }
  SUBCASE("geometry probe span coordinates") { backend_checks::span_coordinates(d); }
  SUBCASE("geometry probe anchors") { backend_checks::anchor_solves(d); }
}

// Three training steps of the study's MLP (MSE) and CNN (cross-entropy) on `device` and on the
// CPU from the same weights and batch: every loss, gradient and parameter compared. The devices
// sum in different orders, so equality is to f32 rounding. The step is SGD with momentum, which
// is linear in the gradient: Adam's update g/√v turns a rounding-level difference in a
// near-zero gradient into a full ±lr step (the Adam kernel itself is checked above).
inline void check_training_matches_cpu(Device device) {
  for (bool cnn : {false, true}) {
    CAPTURE(cnn);
    Generator g_cpu(3), g_other(3);
    std::shared_ptr<nn::Sequential> cpu_net, net;
    Shape input_shape;
    if (cnn) {
      cpu_net = models::make_cnn({}, g_cpu);
      net = models::make_cnn({}, g_other);
      input_shape = Shape{16, 1, 28, 28};
    } else {
      cpu_net = models::make_mlp({.widths = {784, 200, 200, 10}}, g_cpu);
      net = models::make_mlp({.widths = {784, 200, 200, 10}}, g_other);
      input_shape = Shape{200, 784};
    }
    net->to(device);
    const optim::SgdOptions sgd{.lr = 0.02, .momentum = 0.9, .weight_decay = 0.01};
    auto cpu_opt = optim::SGD(cpu_net->parameters(), sgd);
    auto opt = optim::SGD(net->parameters(), sgd);
    Tensor x = random_tensor(input_shape, 11, DType::f32, 0, 1);
    std::vector<std::int32_t> y(static_cast<std::size_t>(input_shape[0]));
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>(i % 10);
    Tensor labels = Tensor::from(y, Shape{input_shape[0]});
    Tensor targets = ops::one_hot(labels, 10);
    Tensor xd = x.to(device), labels_d = labels.to(device), targets_d = targets.to(device);
    for (int step = 0; step < 3; ++step) {
      CAPTURE(step);
      cpu_opt.zero_grad();
      opt.zero_grad();
      Tensor lc = cnn ? ops::cross_entropy(cpu_net->forward(x), labels) : ops::mse_loss(cpu_net->forward(x), targets);
      Tensor ld = cnn ? ops::cross_entropy(net->forward(xd), labels_d) : ops::mse_loss(net->forward(xd), targets_d);
      REQUIRE(std::isfinite(lc.item()));  // a comparison of two diverged runs would prove nothing
      MESSAGE("loss ", lc.item());
      CHECK(ld.item() == doctest::Approx(lc.item()).epsilon(1e-5));
      lc.backward();
      ld.backward();
      const auto cpu_params = cpu_net->named_parameters(), params = net->named_parameters();
      REQUIRE(cpu_params.size() == params.size());
      for (std::size_t i = 0; i < params.size(); ++i) {
        CAPTURE(cpu_params[i].first);
        const auto want = cpu_params[i].second.grad().to_vector();
        double scale = 0;
        for (double v : want) scale = std::max(scale, std::abs(v));
        // Relative to the tensor's largest gradient: a sum that cancels to ~0 keeps an absolute error.
        check_close(params[i].second.grad(), want, {1e-5 * scale, 1e-4}, cpu_params[i].first + " gradient");
      }
      cpu_opt.step();
      opt.step();
    }
    const auto cpu_params = cpu_net->named_parameters(), params = net->named_parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      CAPTURE(cpu_params[i].first);
      CHECK(params[i].second.device() == device);
      check_close(params[i].second, cpu_params[i].second.to_vector(), {1e-5, 1e-4}, cpu_params[i].first);
    }
  }
}

}  // namespace gs::test
