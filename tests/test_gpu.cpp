// CUDA kernels against the float64 reference on fresh random inputs, outputs poisoned first.
// The runner skips this suite (exit 77) where no CUDA device is usable; see tests/main.cpp.
#include <functional>
#include <memory>

#include "backend_checks.h"
#include "engine/probe/geometry.h"
#include "engine/probe/ntk_stream.h"
#include "engine/step_graph.h"
#include "experiments/runner.h"
#include "helpers.h"
#include "kernels/reference/reference.h"

using namespace gs;

namespace {

// The two optimizers of the study's recipes, on one network.
std::unique_ptr<optim::Optimizer> study_optimizer(nn::Sequential& net, bool adam) {
  if (adam) return std::make_unique<optim::Adam>(net.parameters(), optim::AdamOptions{.lr = 1e-3, .weight_decay = 0.01}, true);
  return std::make_unique<optim::SGD>(net.parameters(), optim::SgdOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01});
}

// Runs f with overlapped launches (kernels/graph.h) when `on`, then goes back to plain ones.
void overlapped_if(bool on, const std::function<void()>& f) {
  struct Plain {
    ~Plain() { kernels::set_overlapped_launches(false); }
  } plain;
  kernels::set_overlapped_launches(on);
  f();
}

std::vector<std::vector<double>> parameter_values(nn::Sequential& net) {
  std::vector<std::vector<double>> v;
  for (const auto& p : net.parameters()) v.push_back(p.to_vector());
  return v;
}

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("every kernel family against the float64 reference") { test::check_backend_kernels(Device::cuda); }

  // With overlapped launches a kernel may begin launching before the one before it has ended;
  // each waits for it first, so every result must be what the plain launches give.
  TEST_CASE("every kernel family against the float64 reference, each kernel launched to overlap the one before it") {
    overlapped_if(true, [] { test::check_backend_kernels(Device::cuda); });
  }

  // The NTK probe's products get the large tiling (kernels/cuda/gemm.cu), the training step's the
  // small one; tests pin each in turn. Both keep one running sum per element down the whole depth,
  // in the same order, so besides matching the reference they match each other bit for bit.
  TEST_CASE("both GEMM tilings against the float64 reference and against each other") {
    struct Unpin {
      ~Unpin() { kernels::set_gemm_tiling(kernels::GemmTiling::by_shape); }
    } unpin;
    using kernels::GemmTiling;
    for (GemmTiling tiling : {GemmTiling::small_tiles, GemmTiling::large_tiles}) {
      CAPTURE(static_cast<int>(tiling));
      kernels::set_gemm_tiling(tiling);
      test::backend_checks::gemm(Device::cuda);
      test::backend_checks::dense_layer_backward(Device::cuda);
    }
    auto& be = kernels::backend(Device::cuda);
    const std::int64_t m = 259, n = 131, k = 37;  // partial large tiles along both edges
    for (DType dt : {DType::f32, DType::f64})
      for (bool ta : {false, true}) {
        CAPTURE(dtype_name(dt));
        CAPTURE(ta);
        Tensor a = test::random_tensor(Shape{m * k}, 21, dt).to(Device::cuda);
        Tensor b = test::random_tensor(Shape{k * n}, 22, dt).to(Device::cuda);
        const kernels::GemmShape s{ta, false, m, n, k, ta ? m : k, n, n};
        std::vector<std::vector<double>> results;
        for (GemmTiling tiling : {GemmTiling::small_tiles, GemmTiling::large_tiles}) {
          kernels::set_gemm_tiling(tiling);
          Tensor c = Tensor::full(Shape{m * n}, std::nan(""), dt, Device::cuda);
          be.gemm(dt, s, 0.7, a.raw(), b.raw(), 0.0, c.raw());
          results.push_back(c.to_vector());
        }
        CHECK(results[0] == results[1]);
      }
  }

  // TF32 (kernels/gemm.h): FP32 products whose operands the tensor cores take rounded to 10 bits
  // of mantissa. On operands that are TF32 values already every product is exact, so the GEMMs,
  // dense forwards and convolutions must meet FP32's tolerance; a layer's backward multiplies
  // gz = g ⊙ act'(y), computed in the kernel and rounded there, so it gets TF32's. FP64 products must not change
  // (their checks are not repeated here: a DGEMM below equals the unpinned one bit for bit).
  TEST_CASE("TF32 tensor-core products against the float64 reference") {
    struct Unpin {
      ~Unpin() { kernels::set_gemm_precision(kernels::GemmPrecision::fp32); }
    } unpin;
    kernels::set_gemm_precision(kernels::GemmPrecision::tf32);
    const auto tf32_values = [](const std::vector<double>& v, DType dt) {
      std::vector<double> r = test::backend_checks::rounded(v, dt);
      if (dt == DType::f32)
        for (double& x : r) x = test::tf32(x);
      return r;
    };
    // An error of half a TF32 ulp (2⁻¹¹ relative) in gz, inputs of magnitude at most 2.
    const auto tf32_tolerance = [](DType dt, double terms) {
      return dt == DType::f32 ? test::Tolerance{2 * 2 * std::ldexp(1.0, -11) * terms, 2e-5} : test::backend_checks::tol(dt, terms);
    };
    test::backend_checks::gemm(Device::cuda, {tf32_values, test::backend_checks::tol, {DType::f32}});
    test::backend_checks::dense_layer(Device::cuda, {tf32_values, test::backend_checks::tol, {DType::f32}});
    test::backend_checks::dense_layer_backward(Device::cuda, {tf32_values, tf32_tolerance, {DType::f32}});
    test::backend_checks::batched_convolution(Device::cuda, {tf32_values, test::backend_checks::tol, {DType::f32}});

    auto& be = kernels::backend(Device::cuda);
    const std::int64_t m = 70, n = 65, k = 33;
    Tensor a = test::random_tensor(Shape{m * k}, 41, DType::f64).to(Device::cuda);
    Tensor b = test::random_tensor(Shape{k * n}, 42, DType::f64).to(Device::cuda);
    std::vector<std::vector<double>> results;
    for (auto precision : {kernels::GemmPrecision::tf32, kernels::GemmPrecision::fp32}) {
      kernels::set_gemm_precision(precision);
      Tensor c = Tensor::full(Shape{m * n}, std::nan(""), DType::f64, Device::cuda);
      be.gemm(DType::f64, {false, true, m, n, k, k, k, n}, 1.0, a.raw(), b.raw(), 0.0, c.raw());
      results.push_back(c.to_vector());
    }
    CHECK(results[0] == results[1]);
  }

  // On any FP32 operands: each product within TF32's rounding of both operands (2⁻¹⁰ of |a||b|
  // at most), and the result not FP32's, or the tensor cores were not what ran.
  TEST_CASE("TF32 tensor-core products of unrounded operands: within TF32's error, and not FP32's result") {
    struct Unpin {
      ~Unpin() { kernels::set_gemm_precision(kernels::GemmPrecision::fp32); }
    } unpin;
    auto& be = kernels::backend(Device::cuda);
    const std::int64_t m = 67, n = 130, k = 300;
    const auto av = test::random_values(static_cast<std::size_t>(m * k), 31), bv = test::random_values(static_cast<std::size_t>(k * n), 32);
    Tensor a = Tensor::from(av, Shape{m * k}, DType::f32, Device::cuda), b = Tensor::from(bv, Shape{k * n}, DType::f32, Device::cuda);
    const auto a32 = a.to_vector(), b32 = b.to_vector();
    const kernels::GemmShape s{false, false, m, n, k, k, n, n};
    auto product = [&](kernels::GemmPrecision precision) {
      kernels::set_gemm_precision(precision);
      Tensor c = Tensor::full(Shape{m * n}, std::nan(""), DType::f32, Device::cuda);
      be.gemm(DType::f32, s, 1.0, a.raw(), b.raw(), 0.0, c.raw());
      return c.to_vector();
    };
    const auto fp32 = product(kernels::GemmPrecision::fp32), tf32 = product(kernels::GemmPrecision::tf32);
    const auto want = reference::matmul(a32, b32, m, n, k, false, false);
    std::int64_t outside = 0, apart = 0;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double magnitude = 0;
        for (std::int64_t p = 0; p < k; ++p)
          magnitude += std::abs(a32[static_cast<std::size_t>(i * k + p)] * b32[static_cast<std::size_t>(p * n + j)]);
        const auto e = static_cast<std::size_t>(i * n + j);
        outside += !(std::abs(tf32[e] - want[e]) <= std::ldexp(magnitude, -10) + 2e-6 * static_cast<double>(k));
        apart += tf32[e] != fp32[e];
      }
    CHECK(outside == 0);
    CHECK(apart > m * n / 2);
  }

  // The convolutions likewise: each of the three within TF32's error of the float64 sums of the
  // FP32 operands (its bound the same sums over their magnitudes), and most values not FP32's.
  TEST_CASE("TF32 tensor-core convolutions of unrounded operands: within TF32's error, and not FP32's result") {
    struct Unpin {
      ~Unpin() { kernels::set_gemm_precision(kernels::GemmPrecision::fp32); }
    } unpin;
    auto& be = kernels::backend(Device::cuda);
    const std::int64_t images = 6, channels = 3, height = 11, width = 12, filters = 20, kh = 3, kw = 3, stride = 1, pad = 1;
    const kernels::ConvGeometry g{channels, height, width, kh, kw, stride, pad};
    const std::int64_t in = images * channels * height * width, out = images * filters * g.out_h() * g.out_w();
    const std::int64_t weights = filters * g.patch_size();
    auto f32_tensor = [](std::int64_t n, std::uint64_t seed) {
      return Tensor::from(test::random_values(static_cast<std::size_t>(n), seed), Shape{n}, DType::f32, Device::cuda);
    };
    Tensor x = f32_tensor(in, 51), w = f32_tensor(weights, 52), gy = f32_tensor(out, 53);
    const auto xv = x.to_vector(), wv = w.to_vector(), gyv = gy.to_vector();
    auto magnitudes = [](std::vector<double> v) {
      for (double& e : v) e = std::abs(e);
      return v;
    };
    const auto ax = magnitudes(xv), aw = magnitudes(wv), agy = magnitudes(gyv);
    struct Op {
      const char* name;
      std::int64_t size, terms;
      std::function<void(Tensor&)> run;
      std::vector<double> want, bound;
    };
    const std::vector<Op> ops{
        {"conv2d_forward", out, g.patch_size(),
         [&](Tensor& y) { be.conv2d_forward(DType::f32, g, images, filters, x.raw(), w.raw(), y.raw(), nullptr); },
         reference::conv2d(xv, wv, {}, images, channels, height, width, filters, kh, kw, stride, pad),
         reference::conv2d(ax, aw, {}, images, channels, height, width, filters, kh, kw, stride, pad)},
        {"conv2d_backward_data", in, filters * kh * kw,
         [&](Tensor& gx) { be.conv2d_backward_data(DType::f32, g, images, filters, gy.raw(), w.raw(), gx.raw()); },
         reference::conv2d_input_grad(gyv, wv, images, channels, height, width, filters, kh, kw, stride, pad),
         reference::conv2d_input_grad(agy, aw, images, channels, height, width, filters, kh, kw, stride, pad)},
        {"conv2d_backward_weight", weights, images * g.out_h() * g.out_w(),
         [&](Tensor& gw) { be.conv2d_backward_weight(DType::f32, g, images, filters, x.raw(), gy.raw(), nullptr, gw.raw()); },
         reference::conv2d_weight_grad(xv, gyv, images, channels, height, width, filters, kh, kw, stride, pad),
         reference::conv2d_weight_grad(ax, agy, images, channels, height, width, filters, kh, kw, stride, pad)},
    };
    for (const Op& op : ops) {
      const std::string name = op.name;
      CAPTURE(name);
      auto result = [&](kernels::GemmPrecision precision) {
        kernels::set_gemm_precision(precision);
        Tensor r = Tensor::full(Shape{op.size}, std::nan(""), DType::f32, Device::cuda);
        op.run(r);
        return r.to_vector();
      };
      const auto fp32 = result(kernels::GemmPrecision::fp32), tf32 = result(kernels::GemmPrecision::tf32);
      std::int64_t outside = 0, apart = 0;
      for (std::size_t e = 0; e < tf32.size(); ++e) {
        outside += !(std::abs(tf32[e] - op.want[e]) <= std::ldexp(op.bound[e], -10) + 2e-6 * static_cast<double>(op.terms));
        apart += tf32[e] != fp32[e];
      }
      CHECK(outside == 0);
      CHECK(apart > op.size / 2);
    }
  }

  // A deep dense forward with few tiles is split along its depth and its slices summed in order
  // (the check's 130 × 70 × 784 shape); unsplit, as pinned here, it must hold as well.
  TEST_CASE("a dense layer's forward unsplit along its depth against the float64 reference") {
    struct Unpin {
      ~Unpin() { kernels::set_gemm_split(kernels::GemmSplit::by_shape); }
    } unpin;
    kernels::set_gemm_split(kernels::GemmSplit::never);
    test::backend_checks::dense_layer(Device::cuda);
  }

  TEST_CASE("host/device copies, fill and dtype conversion round-trip") {
    // 524288 f64 values fill the 4 MiB pinned staging buffer exactly; one more goes directly.
    for (std::int64_t n : {1, 255, 256, 257, 100003, 524287, 524288, 524289}) {
      CAPTURE(n);
      Tensor host = test::random_tensor(Shape{n}, 1, DType::f64);
      Tensor dev = host.to(Device::cuda);
      CHECK(dev.to_vector() == host.to_vector());
      CHECK(dev.to(DType::f32).to_vector() == host.to(DType::f32).to_vector());
      Tensor filled = Tensor::full(Shape{n}, -3.25, DType::f32, Device::cuda);
      CHECK(filled.to_vector() == std::vector<double>(static_cast<std::size_t>(n), -3.25));
    }
  }

  TEST_CASE("activations and scaling against the reference") {
    using kernels::Unary;
    for (DType d : {DType::f32, DType::f64})
      for (std::int64_t n : {1, 257, 4097}) {
        Tensor x = test::random_tensor(Shape{n}, 2, d, -4, 4);
        auto xv = x.to_vector();
        for (auto [op, f] : std::vector<std::pair<Unary, Tensor (*)(const Tensor&)>>{
                 {Unary::relu, ops::relu}, {Unary::tanh, ops::tanh}, {Unary::sigmoid, ops::sigmoid}, {Unary::gelu, ops::gelu}}) {
          Tensor y = f(x.to(Device::cuda));
          std::vector<double> want(xv.size());
          for (std::size_t i = 0; i < xv.size(); ++i) want[i] = reference::unary(op, xv[i]);
          test::check_close(y, want, d == DType::f32 ? test::Tolerance{1e-6, 1e-5} : test::Tolerance{1e-14, 1e-13},
                            "cuda activation");
        }
        test::check_close(ops::scale(x.to(Device::cuda), 0.25), [&] {
          auto s = xv;
          for (auto& v : s) v *= 0.25;
          return s;
        }(), {0, 1e-7}, "cuda scale");
      }
  }

  // The fused backward pass reads gz = g ⊙ act'(y) where the separate kernels store it, and each
  // of its parts keeps the separate kernels' order of additions. relu's derivative is a choice,
  // so its gradients match bit for bit; tanh's and sigmoid's products may be contracted
  // differently by the compiler in the two kernels, so they match to rounding.
  TEST_CASE("a dense layer's backward pass in one launch equals its kernels launched apart") {
    using kernels::Unary;
    auto& be = kernels::backend(Device::cuda);
    const std::int64_t rows = 70, in = 150, out = 66;
    for (DType dt : {DType::f32, DType::f64})
      for (std::optional<Unary> act : {std::optional<Unary>{}, std::optional{Unary::relu}, std::optional{Unary::tanh},
                                       std::optional{Unary::sigmoid}}) {
        CAPTURE(static_cast<int>(act.value_or(Unary::gelu)));
        Tensor x = test::random_tensor(Shape{rows, in}, 1, dt).to(Device::cuda);
        Tensor w = test::random_tensor(Shape{out, in}, 2, dt).to(Device::cuda);
        Tensor g = test::random_tensor(Shape{rows, out}, 3, dt).to(Device::cuda);
        Tensor y = test::random_tensor(Shape{rows, out}, 4, dt, -2, 2).to(Device::cuda);
        if (act) be.unary(*act, dt, y.numel(), y.raw(), y.raw());
        Tensor gz = Tensor::empty(g.shape(), dt, Device::cuda), gx = Tensor::empty(x.shape(), dt, Device::cuda),
               gw = Tensor::empty(w.shape(), dt, Device::cuda), gb = Tensor::empty(Shape{out}, dt, Device::cuda);
        be.dense_backward(dt, {rows, in, out}, act, x.raw(), w.raw(), y.raw(), g.raw(), gz.raw(), gx.raw(), gw.raw(),
                          gb.raw());
        Tensor apart_gz = g;
        if (act) {
          apart_gz = Tensor::empty(g.shape(), dt, Device::cuda);
          be.unary_backward(*act, dt, g.numel(), y.raw(), y.raw(), g.raw(), apart_gz.raw());
        }
        Tensor apart_gx = Tensor::empty(x.shape(), dt, Device::cuda), apart_gw = Tensor::empty(w.shape(), dt, Device::cuda),
               apart_gb = Tensor::empty(Shape{out}, dt, Device::cuda);
        be.gemm(dt, {false, false, rows, in, out, out, in, in}, 1.0, apart_gz.raw(), w.raw(), 0.0, apart_gx.raw());
        be.gemm(dt, {true, false, out, in, rows, out, in, in}, 1.0, apart_gz.raw(), x.raw(), 0.0, apart_gw.raw());
        be.sum_rows(dt, rows, out, apart_gz.raw(), apart_gb.raw());
        if (!act || *act == Unary::relu) {
          CHECK(gx.to_vector() == apart_gx.to_vector());
          CHECK(gw.to_vector() == apart_gw.to_vector());
          CHECK(gb.to_vector() == apart_gb.to_vector());
        } else {
          const test::Tolerance t = dt == DType::f32 ? test::Tolerance{1e-5, 1e-5} : test::Tolerance{1e-13, 1e-13};
          test::check_close(gx, apart_gx.to_vector(), t, "fused gx");
          test::check_close(gw, apart_gw.to_vector(), t, "fused gW");
          test::check_close(gb, apart_gb.to_vector(), t, "fused gb");
        }
      }
  }

  TEST_CASE("training steps of the study's MLP and CNN on the GPU equal the CPU's") {
    test::check_training_matches_cpu(Device::cuda);
  }

  // A replay runs the kernels the capture recorded, on the same buffers, so every step of a
  // replayed graph must equal the eager step on the same batch to the last bit; also when the
  // graph's kernels were captured as overlapped launches and the eager steps' were not.
  TEST_CASE("a training step replayed as a CUDA graph computes what the same steps run eagerly compute") {
    struct Case {
      bool cnn;
      const char* loss;
      bool adam;
      bool overlapped = false;
    };
    for (const Case c : {Case{false, "mse", true}, Case{false, "ce", false}, Case{true, "ce", true}, Case{true, "mse", false},
                         Case{false, "mse", true, true}, Case{true, "ce", true, true}}) {
      CAPTURE(c.cnn);
      CAPTURE(c.loss);
      CAPTURE(c.adam);
      CAPTURE(c.overlapped);
      auto make_net = [&] {
        Generator g(7);
        // Replay against eager is a property of the step, not of the sizes: a small CNN (the
        // study's would take most of the emulated suite's time under the sanitizers).
        auto net = c.cnn ? test::small_cnn(g, 1, 28, 10) : models::make_mlp({.widths = {784, 64, 10}}, g);
        net->to(Device::cuda);
        return net;
      };
      auto eager = make_net(), replayed = make_net();
      auto eager_opt = study_optimizer(*eager, c.adam), replayed_opt = study_optimizer(*replayed, c.adam);
      const std::int64_t n = c.cnn ? 4 : 16;
      const Shape shape = c.cnn ? Shape{n, 1, 28, 28} : Shape{n, 784};
      // The batch buffers the graph reads: each step's batch is copied into them.
      Tensor images = Tensor::empty(shape, DType::f32, Device::cuda);
      Tensor labels = Tensor::empty(Shape{n}, DType::i32, Device::cuda);
      Tensor replayed_loss;
      auto work = [&] {
        replayed_opt->zero_grad();
        replayed_loss = experiments::recipe_loss(c.loss, replayed->forward(images), labels, 10);
        replayed_loss.backward();
        replayed_opt->step();
      };
      std::unique_ptr<StepGraph> graph;
      for (int step = 0; step < 5; ++step) {
        CAPTURE(step);
        Tensor x = test::random_tensor(shape, 100 + static_cast<std::uint64_t>(step), DType::f32, 0, 1);
        std::vector<std::int32_t> y(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>((i * 7 + static_cast<std::size_t>(step)) % 10);
        Tensor y_host = Tensor::from(y, Shape{n});

        eager_opt->zero_grad();
        Tensor eager_loss = experiments::recipe_loss(c.loss, eager->forward(x.to(Device::cuda)), y_host.to(Device::cuda), 10);
        eager_loss.backward();
        eager_opt->step();

        images.copy_(x);
        labels.copy_(y_host);
        if (step == 0) {
          overlapped_if(c.overlapped, work);  // once eagerly: SGD's first step is a different update, and state is created
        } else if (step == 1) {
          const auto before = parameter_values(*replayed);
          std::string why_not;
          overlapped_if(c.overlapped, [&] { graph = StepGraph::capture(Device::cuda, work, why_not); });
          REQUIRE_MESSAGE(graph, why_not);
          CHECK(graph->operations() >= 7);  // a step's worth: forward, loss, backward, the optimizer
          CHECK(parameter_values(*replayed) == before);  // captured, not run
          CHECK(replayed_opt->steps_taken() == 2);       // the host code did run
          graph->replay();
        } else {
          replayed_opt->set_step_count(replayed_opt->steps_taken() + 1);
          graph->replay();
        }
        REQUIRE(std::isfinite(eager_loss.item()));
        CHECK(replayed_loss.item() == eager_loss.item());
      }
      CHECK(parameter_values(*replayed) == parameter_values(*eager));
      const auto eager_state = eager_opt->state(), replayed_state = replayed_opt->state();
      for (std::size_t i = 0; i < eager_state.size(); ++i) {
        CAPTURE(eager_state[i].first);
        CHECK(replayed_state[i].second.to_vector() == eager_state[i].second.to_vector());
      }
    }
  }

  TEST_CASE("a step that reads a value back cannot be captured: the capture says why and changes nothing") {
    Generator g(8);
    auto net = models::make_mlp({.widths = {784, 32, 10}}, g);
    net->to(Device::cuda);
    optim::Adam opt(net->parameters(), {}, true);
    Tensor x = test::random_tensor(Shape{8, 784}, 9, DType::f32, 0, 1).to(Device::cuda);
    Tensor labels = Tensor::from(std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7}, Shape{8}, Device::cuda);
    double loss_value = 0;
    auto work = [&] {
      opt.zero_grad();
      Tensor loss = ops::cross_entropy(net->forward(x), labels);
      loss.backward();
      opt.step();
      loss_value = loss.item();  // a wait for the device: no graph can hold it
    };
    work();
    const auto before = parameter_values(*net);
    const auto steps = opt.steps_taken();
    std::string why_not;
    auto graph = StepGraph::capture(Device::cuda, work, why_not);
    CHECK(graph == nullptr);
    CAPTURE(why_not);
    CHECK(why_not.find("captur") != std::string::npos);
    CHECK(parameter_values(*net) == before);
    opt.set_step_count(steps);
    // The device is usable again, and the step runs eagerly as before.
    work();
    CHECK(std::isfinite(loss_value));
    CHECK(parameter_values(*net) != before);
  }

  // The streamed NTK comparison of the probe, on the device: the factors of an MLP and of a CNN
  // (convolutions, pooling) are computed there and every tile is built and summed
  // there; only the sums come back.
  TEST_CASE("the NTK comparison of an MLP and a CNN on the GPU equals the CPU's") {
    for (bool cnn : {false, true})
      for (DType dt : {DType::f64, DType::f32}) {
        const std::string dtype = dtype_name(dt);
        CAPTURE(cnn);
        CAPTURE(dtype);
        // A small CNN: the study's 18k-wide factor rows would make the emulated run minutes long.
        auto make_net = [&](std::uint64_t seed, Device device) {
          Generator g(seed);
          auto net = cnn ? test::small_cnn(g, 2, 8, 3, 0.5) : models::make_mlp({{12, 9, 7, 4}, nn::Activation::tanh, 1.5, 0.5}, g);
          net->to(dt);
          net->to(device);
          return net;
        };
        Tensor x = cnn ? test::random_tensor(Shape{5, 2, 8, 8}, 23, dt) : test::random_tensor(Shape{11, 12}, 23, dt);
        auto start = probe::kernel_factors(*make_net(21, Device::cpu), x);
        auto later = probe::kernel_factors(*make_net(22, Device::cpu), x);
        auto start_d = probe::kernel_factors(*make_net(21, Device::cuda), x.to(Device::cuda));
        auto later_d = probe::kernel_factors(*make_net(22, Device::cuda), x.to(Device::cuda));
        CHECK(start_d.device() == Device::cuda);
        REQUIRE(start_d.layers.size() == start.layers.size());
        const double tolerance = dt == DType::f64 ? 1e-12 : 2e-5;
        for (std::size_t l = 0; l < start.layers.size(); ++l) {  // each layer's factors, the convolutions' too
          CAPTURE(start.layers[l].name);
          const auto want = start.layers[l].signals.to_vector();
          double scale = 0;
          for (double v : want) scale = std::max(scale, std::abs(v));
          test::check_close(start_d.layers[l].signals, want, {tolerance * scale, tolerance}, "layer factors on the device");
        }
        for (std::int64_t tile : {3, 4, 64}) {  // partial tiles, and one tile for everything
          CAPTURE(tile);
          const auto want = probe::compare_streamed(later, {&start, &later}, tile);
          const auto got = probe::compare_streamed(later_d, {&start_d, &later_d}, tile);
          CHECK(got.norm2 == doctest::Approx(want.norm2).epsilon(tolerance));
          for (std::size_t r = 0; r < 2; ++r) {
            CHECK(got.norm2_ref[r] == doctest::Approx(want.norm2_ref[r]).epsilon(tolerance));
            CHECK(got.inner[r] == doctest::Approx(want.inner[r]).epsilon(tolerance));
          }
          const double distance = 1 - got.inner[0] / std::sqrt(got.norm2 * got.norm2_ref[0]);
          CHECK(distance > 1e-3);  // two different networks: the comparison is not vacuous
          CHECK(distance == doctest::Approx(1 - want.inner[0] / std::sqrt(want.norm2 * want.norm2_ref[0])).epsilon(1e-4));
        }
        test::check_close(probe::trace_kernel(start_d), probe::trace_kernel(start).to_vector(), {1e-12, tolerance},
                          "trace kernel from device factors");
        const auto layers_d = probe::layer_trace_kernels(later_d), layers = probe::layer_trace_kernels(later);
        REQUIRE(layers_d.size() == layers.size());
        for (std::size_t l = 0; l < layers.size(); ++l)
          test::check_close(layers_d[l], layers[l].to_vector(), {1e-12, tolerance}, "a layer's trace kernel from device factors");
        std::vector<std::int32_t> y;
        for (std::int64_t i = 0; i < x.size(0); ++i) y.push_back(static_cast<std::int32_t>((i * 7) % later.classes));
        const Tensor labels = Tensor::from(y, Shape{x.size(0)});
        const double quadratic = probe::target_quadratic_form(later, labels);
        CHECK(std::abs(quadratic) > 1e-6);
        CHECK(probe::target_quadratic_form(later_d, labels) == doctest::Approx(quadratic).epsilon(tolerance));
        test::check_close(probe::output_gram(start_d), probe::output_gram(start).to_vector(), {1e-12, tolerance},
                          "output Gram from device factors");
      }
  }

  TEST_CASE("the geometry of a layer with its anchors solved on the GPU equals the CPU's") {
    // Four clouds of uniform noise around their centers: most t vectors need a solve, some are interior.
    const std::int64_t classes = 4, per_class = 30, features = 20, n_t = 60;
    const auto centers = test::random_values(static_cast<std::size_t>(classes * features), 31, -3, 3);
    auto x = test::random_values(static_cast<std::size_t>(classes * per_class * features), 32, -1, 1);
    std::vector<std::int32_t> labels;
    for (std::int64_t i = 0; i < classes * per_class; ++i) {
      labels.push_back(static_cast<std::int32_t>(i / per_class));
      for (std::int64_t f = 0; f < features; ++f) x[static_cast<std::size_t>(i * features + f)] += centers[static_cast<std::size_t>(i / per_class * features + f)];
    }
    // The center structure's K as the search picks it, and fixed at the most 4 centers allow.
    for (const auto& [kappa, removal] : {std::pair{0.0, probe::CenterRemoval{}}, std::pair{0.2, probe::CenterRemoval{}},
                                         std::pair{0.0, probe::CenterRemoval::fixed(2)}}) {
      CAPTURE(kappa);
      CAPTURE(removal.k);
      const auto cpu = probe::analyze_layer(x, features, labels, classes, kappa, n_t, 5, removal, Device::cpu);
      const auto gpu = probe::analyze_layer(x, features, labels, classes, kappa, n_t, 5, removal, Device::cuda);
      if (removal.k > 0) CHECK(cpu.k == removal.k);
      REQUIRE(gpu.per_class.size() == cpu.per_class.size());
      std::int64_t interior = 0;
      for (std::size_t c = 0; c < cpu.per_class.size(); ++c) {
        CAPTURE(c);
        const auto &want = cpu.per_class[c], &got = gpu.per_class[c];
        // The two solve the same strictly convex QP; their anchors agree to the solver's rounding.
        CHECK(got.capacity == doctest::Approx(want.capacity).epsilon(1e-9));
        CHECK(got.radius == doctest::Approx(want.radius).epsilon(1e-9));
        CHECK(got.dimension == doctest::Approx(want.dimension).epsilon(1e-9));
        CHECK(got.interior == want.interior);
        CHECK(got.worst.max_violation <= 1e-9);
        CHECK(got.worst.min_multiplier >= 0);
        CHECK(got.worst.max_complementarity <= 1e-9);
        interior += got.interior;
      }
      CHECK(interior > 0);
      CHECK(interior < classes * n_t);  // solves ran
      CHECK(gpu.capacity == doctest::Approx(cpu.capacity).epsilon(1e-9));
      CHECK(gpu.k == cpu.k);
    }
  }
}
