// The emulator's streams and graphs (test_cuda_emulator.cpp says why these exist): capture and
// replay, the calls a capture refuses, replays over freed memory; and what the backend's
// training step and probes ask of them: no round trip to the host, the same launches every step.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "cuda_emulator_tools.h"
#include "engine/optim.h"
#include "engine/probe/ntk_stream.h"
#include "experiments/runner.h"
#include "helpers.h"
#include "models/models.h"

TEST_SUITE("cuda_emulator") {
  TEST_CASE("work on a stream being captured is recorded, not run, and every replay runs it on the data of the moment") {
    const i64 n = 300;  // two blocks, the second partial
    std::vector<float> x(n), zeros(n, 0.0f);
    for (i64 i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = 1.0f + static_cast<float>(i);
    float* dx = device_array<float>(n);
    float* dy = device_array<float>(n);
    float* dz = device_array<float>(n);
    to_device(dx, x);
    to_device(dy, zeros);
    to_device(dz, zeros);
    cudaStream_t s = gs::kernels::cuda::stream();
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cudaStreamCaptureStatus status{};
    REQUIRE(cudaStreamIsCapturing(s, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusActive);
    launch("accumulate", n, 2, block_threads, accumulate_kernel, n, dx, dy);
    REQUIRE(cudaMemcpyAsync(dz, dy, n * sizeof(float), cudaMemcpyDeviceToDevice, s) == cudaSuccess);
    std::string why;
    cudaGraph_t graph = end_capture(why);
    REQUIRE(graph != nullptr);
    CHECK(why == "");
    std::size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 2);
    CHECK(to_host(dy, n) == zeros);  // recorded, not run
    CHECK(to_host(dz, n) == zeros);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(to_host(dy, n) == x);
    CHECK(to_host(dz, n) == x);  // the copy ran after the kernel, in capture order
    // A replay reads what its buffers hold now: new inputs copied in between steps are used.
    std::vector<float> x2(n), want(n);
    for (i64 i = 0; i < n; ++i) {
      x2[static_cast<std::size_t>(i)] = -0.5f * static_cast<float>(i);
      want[static_cast<std::size_t>(i)] = x[static_cast<std::size_t>(i)] + x2[static_cast<std::size_t>(i)];
    }
    to_device(dx, x2);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(to_host(dy, n) == want);
    CHECK(to_host(dz, n) == want);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    for (float* p : {dx, dy, dz}) cudaFree(p);
  }

  TEST_CASE("a capture-unsafe call fails and invalidates the capture, naming the call") {
    float* d = device_array<float>(64);
    std::vector<float> host(64, 1.0f);
    cudaStream_t s = gs::kernels::cuda::stream();
    const std::vector<std::pair<std::string, std::function<cudaError_t()>>> unsafe = {
        {"cudaMemcpy", [&] { return cudaMemcpy(d, host.data(), 256, cudaMemcpyHostToDevice); }},
        {"cudaMemcpyAsync", [&] { return cudaMemcpyAsync(host.data(), d, 256, cudaMemcpyDeviceToHost, s); }},
        {"cudaMalloc", [&] {
           void* p = nullptr;
           return cudaMalloc(&p, 64);
         }},
        {"cudaFree", [&] { return cudaFree(d); }},
        {"cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s); }},
        {"cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize(); }},
        {"legacy stream", [&] {
           gs::cuda_emulator::launch("accumulate", dim3(1), dim3(64), nullptr, [] {}, {});
           return cudaGetLastError();
         }},
    };
    for (const auto& [call, f] : unsafe) {
      CAPTURE(call);
      REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
      CHECK(f() == cudaErrorStreamCaptureUnsupported);
      std::string why;
      CHECK(end_capture(why) == nullptr);
      CHECK(why.find(call) != std::string::npos);
      CHECK(why.find("invalidated") != std::string::npos);
    }
    CHECK(gs::cuda_emulator::is_device_pointer(d));  // the refused cudaFree freed nothing
    // A thread that says so may allocate during capture (the caching allocator does); a capture
    // by another thread's rules does not stop this one.
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    void* p = nullptr;
    CHECK(cudaMalloc(&p, 64) == cudaSuccess);
    cudaThreadExchangeStreamCaptureMode(&mode);
    CHECK(mode == cudaStreamCaptureModeRelaxed);
    std::string why;
    cudaGraph_t graph = end_capture(why);
    CHECK(graph != nullptr);
    cudaGraphDestroy(graph);
    cudaFree(p);
    cudaFree(d);
  }

  TEST_CASE("a replay that would touch memory freed since its capture fails as an illegal address") {
    const i64 n = 64;
    float* dx = device_array<float>(n);
    float* dy = device_array<float>(n);
    {
      const CapturedGraph g([&] { launch("accumulate", n, 1, block_threads, accumulate_kernel, n, dx, dy); });
      CHECK(g.replay() == cudaSuccess);
      cudaFree(dy);
      CHECK(g.replay() == cudaErrorIllegalAddress);
      CHECK(std::string(cudaGetErrorString(cudaErrorIllegalAddress)).find("freed since the capture") != std::string::npos);
      (void)cudaGetLastError();
    }
    cudaFree(dx);
  }

  // What makes a step capturable as one CUDA graph, and keeps eager steps from stalling on the
  // host: no copy across the host boundary between the batch's upload and the loss read-back,
  // and no host value that changes from step to step baked into a launch (Adam's step count was).
  TEST_CASE("a training step on the device makes no round trip to the host, and launches what the next one does") {
    for (const char* loss_kind : {"mse", "ce"})
      for (bool cnn : {false, true}) {
        CAPTURE(loss_kind);
        CAPTURE(cnn);
        gs::Generator gen(5);
        auto net = cnn ? gs::models::make_cnn({}, gen) : gs::models::make_mlp({.widths = {784, 64, 10}}, gen);
        net->to(gs::Device::cuda);
        gs::optim::Adam opt(net->parameters(), {}, /*decoupled_weight_decay=*/true);
        const std::int64_t n = 8;
        gs::Tensor x = gs::Tensor::full(cnn ? gs::Shape{n, 1, 28, 28} : gs::Shape{n, 784}, 0.5, gs::DType::f32, gs::Device::cuda);
        std::vector<std::int32_t> y(n);
        for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 10);
        gs::Tensor labels = gs::Tensor::from(y, gs::Shape{n}, gs::Device::cuda);
        auto step = [&] {
          opt.zero_grad();
          gs::Tensor loss = gs::experiments::recipe_loss(loss_kind, net->forward(x), labels, 10);
          loss.backward();
          opt.step();
          return loss;
        };
        step();  // the first step creates the optimizer state
        const auto before = gs::cuda_emulator::copy_counts();
        gs::Tensor loss = step();
        const auto after = gs::cuda_emulator::copy_counts();
        CHECK(after.host_to_device == before.host_to_device);
        CHECK(after.device_to_host == before.device_to_host);
        CHECK(std::isfinite(loss.item()));
        CHECK(gs::cuda_emulator::copy_counts().device_to_host == after.device_to_host + 1);  // the counter counts

        gs::cuda_emulator::record_launches(true);
        step();
        const auto third = gs::cuda_emulator::recorded_launches();
        gs::cuda_emulator::record_launches(true);
        step();
        const auto fourth = gs::cuda_emulator::recorded_launches();
        gs::cuda_emulator::record_launches(false);
        // A step's worth. The MLP 784-64-10 has 7, with MSE or cross-entropy: two GEMMs (the
        // first, 784 deep with one column of tiles, split along its depth and then summed: two
        // launches), the loss (which also writes backward()'s seed and the gradient for it), two
        // layer backward passes and AdamW.
        const bool mse = std::string(loss_kind) == "mse";
        if (cnn)
          CHECK(third.size() >= 7);
        else
          CHECK(third.size() == 7u);
        CHECK(third == fourth);
        auto launched = [&](const std::string& kernel) {
          return std::count_if(third.begin(), third.end(), [&](const std::string& l) {
            return l.rfind(kernel + "(", 0) == 0 || l.rfind(kernel + " (", 0) == 0;  // "gemm (64 × 64 tiles)(…)"
          });
        };
        // Each dense layer's backward pass is one launch: no separate GEMM, ReLU derivative or bias sum.
        CHECK(launched("dense_backward") == 2);
        if (!cnn) {  // each Linear + ReLU is one GEMM that adds the bias and applies the ReLU as it stores
          CHECK(launched("gemm_bias_act") == 3);
          CHECK(launched("gemm_bias_act (64 × 64 tiles, split along the depth)") == 1);
          CHECK(launched("gemm_bias_act (sum of splits, bias, activation)") == 1);
          CHECK(launched("broadcast_rows") == 0);
          CHECK(launched("unary") == 0);
          CHECK(launched("gemm") == 0);
          CHECK(launched("unary_backward") == 0);
          CHECK(launched("sum_rows") == 0);
        }
        // A batch's loss is a one-block sum; the MSE reads the labels, with no one-hot targets stored;
        // the cross-entropy takes its log-softmax in the same launch. Neither launches a backward.
        CHECK(launched(mse ? "mse_one_hot" : "cross_entropy") == 1);
        CHECK(launched("log_softmax") == 0);
        CHECK(launched("mse_one_hot_backward") == 0);
        CHECK(launched("nll_backward") == 0);
        CHECK(launched("log_softmax_backward") == 0);
        CHECK(launched("one_hot") == 0);
        CHECK(launched("fill") == 0);  // backward()'s seed is written by the loss's launch
        CHECK(launched("adam_steps") == 1);  // every parameter in one launch, which also counts the step
        CHECK(launched("adam_advance") == 0);
      }
  }

  // Probes never leave the device: from factors held there, the streamed probe's companions
  // (each layer's trace kernel, the alignment's numerator, the output Gram) copy back their n × n
  // results and sums, never the n·C-row factors they are computed from.
  TEST_CASE("the NTK probe's companions from device factors copy back results, not factors") {
    gs::Generator gen(7);
    auto net = gs::models::make_mlp({.widths = {30, 40, 40, 10}}, gen);
    net->to(gs::Device::cuda);
    const std::int64_t n = 12;
    gs::Tensor x = gs::Tensor::full(gs::Shape{n, 30}, 0.25, gs::DType::f32, gs::Device::cuda);
    const auto factors = gs::probe::kernel_factors(*net, x);
    std::int64_t factor_bytes = 0;
    for (const auto& l : factors.layers)
      if (l.signals.defined()) factor_bytes += l.signals.numel() * 4;
    std::vector<std::int32_t> y;
    for (std::int64_t i = 0; i < n; ++i) y.push_back(static_cast<std::int32_t>(i % 10));
    const gs::Tensor labels = gs::Tensor::from(y, gs::Shape{n});
    const auto before = gs::cuda_emulator::copy_counts();
    const auto traces = gs::probe::layer_trace_kernels(factors);
    const double quadratic = gs::probe::target_quadratic_form(factors, labels);
    const gs::Tensor output = gs::probe::output_gram(factors);
    const auto after = gs::cuda_emulator::copy_counts();
    CHECK(std::isfinite(quadratic));
    // f64 trace kernels, the f32 output Gram (made f64 on the host), a sum per layer.
    const auto layers = static_cast<std::int64_t>(traces.size());
    const std::int64_t results = layers * n * n * 8 + n * n * 4, sums = layers * 8;
    CHECK(after.device_to_host_bytes - before.device_to_host_bytes <= results + sums);
    CHECK(after.device_to_host_bytes - before.device_to_host_bytes >= results);  // the counter counts bytes
    CHECK(factor_bytes > 4 * results);  // the factors themselves would not have fit the bound
    CHECK(after.host_to_device_bytes - before.host_to_device_bytes == n * 10 * 8);  // the labels, as Y
  }

  // Large tiles once a product has at least two of them per multiprocessor (the emulator reports
  // an H200's 132), unless a tiling is pinned; the launch names the tiling it ran.
  TEST_CASE("a GEMM's tiling follows its shape unless one is pinned") {
    using gs::kernels::GemmTiling;
    struct Unpin {
      ~Unpin() {
        gs::kernels::set_gemm_tiling(GemmTiling::by_shape);
        gs::cuda_emulator::record_launches(false);
      }
    } unpin;
    auto& be = gs::kernels::backend(gs::Device::cuda);
    const i64 m = 17 * 128, n = 16 * 128;  // 272 large tiles ≥ 264; one row of tiles fewer is 256
    gs::Tensor a = gs::Tensor::full(gs::Shape{m}, 1.0, gs::DType::f32, gs::Device::cuda);
    gs::Tensor b = gs::Tensor::full(gs::Shape{n}, 1.0, gs::DType::f32, gs::Device::cuda);
    gs::Tensor c = gs::Tensor::empty(gs::Shape{m * n}, gs::DType::f32, gs::Device::cuda);
    auto tiling_of = [&](i64 rows, GemmTiling pinned) {  // an outer product a bᵀ over `rows` rows
      gs::kernels::set_gemm_tiling(pinned);
      gs::cuda_emulator::record_launches(true);
      be.gemm(gs::DType::f32, {false, false, rows, n, 1, 1, n, n}, 1.0, a.raw(), b.raw(), 0.0, c.raw());
      const auto launches = gs::cuda_emulator::recorded_launches();
      REQUIRE(launches.size() == 1);
      return launches[0].substr(0, launches[0].find(')') + 1);
    };
    CHECK(tiling_of(m, GemmTiling::by_shape) == "gemm (128 × 128 tiles)");
    CHECK(tiling_of(m - 128, GemmTiling::by_shape) == "gemm (64 × 64 tiles)");
    CHECK(tiling_of(200, GemmTiling::by_shape) == "gemm (64 × 64 tiles)");
    CHECK(tiling_of(m, GemmTiling::small_tiles) == "gemm (64 × 64 tiles)");
    CHECK(tiling_of(200, GemmTiling::large_tiles) == "gemm (128 × 128 tiles)");
    CHECK(c.to_vector()[0] == 1.0);
  }
}
