// bench_cuda's training-step tables: one AdamW step of the MNIST MLP and of the study's CNN,
// eager and replayed as one CUDA graph, with plain and with overlapped launches
// (kernels/graph.h), what a run adds to a replayed step, and where an eager step's time goes.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/cuda/tables.h"
#include "benchmarks/cuda/timing.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/step_graph.h"
#include "engine/tensor.h"
#include "experiments/step_queue.h"
#include "kernels/backend.h"
#include "models/models.h"

namespace gs::bench_cuda {

namespace {

// One AdamW training step of `net` on the GPU, on a fixed random batch (labels i mod 10): what the
// step benchmarks time and the profiler's replay runs.
struct GpuTrainingStep {
  std::shared_ptr<nn::Sequential> net;
  optim::Adam opt;
  bool mse;
  Tensor x, xd, labels;  // the batch on the host and on the device
  Tensor loss;           // after a capture: the graph's loss buffer, which every replay rewrites

  GpuTrainingStep(std::shared_ptr<nn::Sequential> model, const Shape& input, bool mse_loss)
      : net((model->to(Device::cuda), std::move(model))),
        opt(optim::AdamW(net->parameters(), {.lr = 1e-3, .weight_decay = 0.01})),
        mse(mse_loss),
        x(Tensor::empty(input, DType::f32)) {
    Generator data(2, Stream::test);
    data.uniform(x, 0, 1);
    std::vector<std::int32_t> y(static_cast<std::size_t>(input[0]));
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>(i % 10);
    labels = Tensor::from(y, Shape{input[0]}).to(Device::cuda);
    xd = x.to(Device::cuda);
  }
  void operator()() {
    opt.zero_grad();
    Tensor out = net->forward(xd);
    loss = mse ? ops::mse_one_hot_loss(out, labels) : ops::cross_entropy(out, labels);
    loss.backward();
    opt.step();
  }
};

// One AdamW training step, eager (a launch per kernel) and replayed as one CUDA graph.
void bench_training_step(const char* what, std::shared_ptr<nn::Sequential> model, Shape input, bool mse,
                         const char* target) {
  GpuTrainingStep training(std::move(model), input, mse);
  auto& net = training.net;
  auto& opt = training.opt;
  const Tensor &x = training.x, &labels = training.labels;
  Tensor& xd = training.xd;
  Tensor& loss = training.loss;
  const std::int64_t batch = input[0];
  auto step = [&] { training(); };
  step();  // SGD and Adam state exist before a capture; see engine/step_graph.h
  const double eager = median_seconds(step, 200);
  std::printf("\n| training step, %s | time per step | ratio (eager / graph) |\n", what);
  std::printf("| --- | ---: | ---: |\n");
  std::printf("| eager: one launch per kernel | %.1f µs | |\n", eager * 1e6);
  std::string why_not;
  auto graph = StepGraph::capture(Device::cuda, step, why_not);
  if (!graph) {
    std::printf("| one CUDA graph | not captured: %s | |\n", why_not.c_str());
    return;
  }
  const double replayed = median_seconds([&] { graph->replay(); }, 200);
  std::printf("| one CUDA graph of %lld operations, replayed%s | %.1f µs | %.2f |\n",
              static_cast<long long>(graph->operations()), target, replayed * 1e6, eager / replayed);

  // What a run adds to a replayed step, wall clock. A run now queues the upload of the batch's row
  // numbers and the read-back of its loss (experiments/step_queue.h), waiting once per 64 steps;
  // before, it waited for both every step, and before that it uploaded the batch itself.
  std::vector<std::int32_t> rows(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) rows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7) % batch);
  const Tensor rows_host = Tensor::from(rows, Shape{batch});
  Tensor rows_device = rows_host.to(Device::cuda);
  {
    experiments::StepQueue queue(Device::cuda, batch);
    std::int64_t n = 0;
    std::printf("| a run's step: rows up, replayed, loss back, all queued (a wait per 64 steps) | %.1f µs | |\n",
                wall_median_seconds([&] {
                  queue.upload_rows(rows, rows_device);
                  graph->replay();
                  if (queue.queue_loss(loss, ++n)) (void)queue.check();
                }, 640) * 1e6);
    (void)queue.check();
  }
  std::printf("| replayed, then the loss read back (a run's step before) | %.1f µs | |\n",
              wall_median_seconds([&] { graph->replay(); (void)loss.item(); }, 200) * 1e6);
  std::printf("| upload of the batch's %lld row numbers, waited for (a run's step before) | %.1f µs | |\n", static_cast<long long>(batch),
              wall_median_seconds([&] { rows_device.copy_(rows_host); }, 200) * 1e6);
  std::printf("| upload of the batch itself, %.0f KB (a run's step before that) | %.1f µs | |\n", x.numel() * 4 / 1e3,
              wall_median_seconds([&] { xd.copy_(x); }, 200) * 1e6);

  // Where an eager step's time goes: events between its parts, recorded on the legacy stream
  // (which orders itself with the backend's blocking stream), medians of 200 steps.
  constexpr int parts = 4;
  const char* part_names[parts] = {"forward", "loss", "backward", "AdamW"};
  cudaEvent_t marks[parts + 1];
  for (auto& e : marks) check(cudaEventCreate(&e), "event");
  std::vector<double> part_times[parts];
  for (int i = 0; i < 200; ++i) {
    check(cudaEventRecord(marks[0]), "record");
    opt.zero_grad();
    Tensor out = net->forward(xd);
    check(cudaEventRecord(marks[1]), "record");
    Tensor part_loss = mse ? ops::mse_one_hot_loss(out, labels) : ops::cross_entropy(out, labels);
    check(cudaEventRecord(marks[2]), "record");
    part_loss.backward();
    check(cudaEventRecord(marks[3]), "record");
    opt.step();
    check(cudaEventRecord(marks[4]), "record");
    check(cudaEventSynchronize(marks[4]), "sync");
    for (int p = 0; p < parts; ++p) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, marks[p], marks[p + 1]), "elapsed");
      part_times[p].push_back(ms * 1e3);
    }
  }
  for (auto& e : marks) check(cudaEventDestroy(e), "event");
  for (int p = 0; p < parts; ++p) {
    auto& t = part_times[p];
    std::sort(t.begin(), t.end());
    std::printf("| eager, %s only | %.1f µs | |\n", part_names[p], t[t.size() / 2]);
  }

  // The same step with overlapped launches (kernels/graph.h: each kernel may begin launching
  // while the one before it finishes, and waits for it first), eager and as a graph of its own.
  // Last, since a capture rebinds `loss` to its graph's buffer. Ratio: plain over overlapped.
  kernels::set_overlapped_launches(true);
  const double eager_overlapped = median_seconds(step, 200);
  std::string why_not_overlapped;
  auto overlapped_graph = StepGraph::capture(Device::cuda, step, why_not_overlapped);
  kernels::set_overlapped_launches(false);
  std::printf("| eager, overlapped launches (ratio: plain / overlapped) | %.1f µs | %.2f |\n", eager_overlapped * 1e6,
              eager / eager_overlapped);
  if (!overlapped_graph) {
    std::printf("| one CUDA graph of overlapped launches | not captured: %s | |\n", why_not_overlapped.c_str());
    return;
  }
  const double replayed_overlapped = median_seconds([&] { overlapped_graph->replay(); }, 200);
  std::printf("| one CUDA graph of overlapped launches, replayed%s (ratio: plain / overlapped) | %.1f µs | %.2f |\n", target,
              replayed_overlapped * 1e6, replayed / replayed_overlapped);
}

}  // namespace

void training_step_tables() {
  Generator gen(1);
  section("training step, MLP", [&] {
    bench_training_step("MLP 784-200-200-10, batch 200, MSE, AdamW", models::make_mlp({.widths = {784, 200, 200, 10}, .init_scale = 8}, gen),
                        Shape{200, 784}, true, " (target ≤ 20 µs)");
  });
  section("training step, CNN", [&] {
    bench_training_step("the study's CNN, batch 64, cross-entropy, AdamW", models::make_cnn({}, gen), Shape{64, 1, 28, 28}, false, "");
  });
}

// For a profiler (tools/gpu_check.sh runs it under Nsight Compute): the MNIST MLP's training step
// captured as one graph and replayed 3 times, and nothing else, so that the last kernels the
// profiler lists are one replay's. Prints how many operations a replay runs.
void replay_step_for_profiler() {
  Generator gen(1);
  GpuTrainingStep training(models::make_mlp({.widths = {784, 200, 200, 10}, .init_scale = 8}, gen), Shape{200, 784}, true);
  auto step = [&] { training(); };
  step();
  std::string why_not;
  auto graph = StepGraph::capture(Device::cuda, step, why_not);
  if (!graph) {
    std::printf("bench_cuda: the step was not captured: %s\n", why_not.c_str());
    return;
  }
  for (int i = 0; i < 3; ++i) graph->replay();
  check(cudaDeviceSynchronize(), "synchronize");
  std::printf("operations per replay: %lld\n", static_cast<long long>(graph->operations()));
}

}  // namespace gs::bench_cuda
