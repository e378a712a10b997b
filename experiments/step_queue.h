#pragma once
// A GPU run's training steps queued ahead of the device. Each step's batch rows go up and its
// loss comes back as queued copies through page-locked host memory, so that the host never
// waits for a step and the device never waits for the host between steps. The losses are
// checked when the queue is full and whenever the run is about to read the weights (metrics,
// probes, checkpoints, a stop): a loss that is not finite is still reported at its own step.
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/tensor.h"

namespace gs::experiments {

class StepQueue {
 public:
  // Room for `depth` steps of batches of at most `max_batch` rows.
  StepQueue(Device device, std::int64_t max_batch, int depth = 64);
  ~StepQueue();
  StepQueue(const StepQueue&) = delete;
  StepQueue& operator=(const StepQueue&) = delete;

  // Queues the next step's rows into device_rows (i32, rows.size() values).
  void upload_rows(const std::vector<std::int32_t>& rows, Tensor& device_rows);
  // Queues that step's loss (a scalar on the device) for reading back, under its step number;
  // true when the queue is full and check() must run before the next step.
  bool queue_loss(const Tensor& loss, std::int64_t step);

  struct NotFinite {
    std::int64_t step;
    double loss;
  };
  // Waits for the device, empties the queue, and gives the first queued loss that is not finite.
  std::optional<NotFinite> check();

 private:
  Device device_;
  std::int64_t max_batch_;
  int depth_;
  std::int32_t* rows_ = nullptr;  // [depth, max_batch], page-locked
  double* losses_ = nullptr;      // [depth] slots of 8 bytes, each holding an f32 or an f64
  std::vector<std::pair<std::int64_t, DType>> steps_;  // per queued loss: its step and dtype
  int queued() const { return static_cast<int>(steps_.size()); }  // losses queued since the last check()
};

}  // namespace gs::experiments
