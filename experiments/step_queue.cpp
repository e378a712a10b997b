#include "experiments/step_queue.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "kernels/backend.h"

namespace gs::experiments {

StepQueue::StepQueue(Device device, std::int64_t max_batch, int depth)
    : device_(device), max_batch_(max_batch), depth_(depth) {
  GS_CHECK(max_batch >= 1 && depth >= 1, "StepQueue: batches of {} rows, {} steps deep", max_batch, depth);
  auto& be = kernels::backend(device_);
  rows_ = static_cast<std::int32_t*>(be.allocate_host(sizeof(std::int32_t) * static_cast<std::size_t>(max_batch * depth)));
  losses_ = static_cast<double*>(be.allocate_host(sizeof(double) * static_cast<std::size_t>(depth)));
}

StepQueue::~StepQueue() {
  // A run that stops on an error may leave copies queued: they must finish before their host
  // memory goes. After a device fault the wait throws and nothing runs any more, so the memory is
  // released all the same. Errors here would only hide the one being reported.
  auto& be = kernels::backend(device_);
  const auto quietly = [](auto&& call) {
    try {
      call();
    } catch (...) {
    }
  };
  quietly([&] { be.synchronize(); });
  quietly([&] { be.release_host(rows_); });
  quietly([&] { be.release_host(losses_); });
}

void StepQueue::upload_rows(const std::vector<std::int32_t>& rows, Tensor& device_rows) {
  const auto n = static_cast<std::int64_t>(rows.size());
  GS_CHECK(queued() < depth_, "StepQueue: {} steps queued, check() them first", queued());
  GS_CHECK(n <= max_batch_ && device_rows.numel() == n && device_rows.dtype() == DType::i32,
           "StepQueue: {} rows for a batch of at most {} into an i32 buffer of {}", n, max_batch_, device_rows.numel());
  std::int32_t* slot = rows_ + static_cast<std::ptrdiff_t>(queued()) * max_batch_;
  std::copy(rows.begin(), rows.end(), slot);
  kernels::backend(device_).copy_from_host_queued(device_rows.raw(), slot, sizeof(std::int32_t) * rows.size());
}

bool StepQueue::queue_loss(const Tensor& loss, std::int64_t step) {
  GS_CHECK(queued() < depth_, "StepQueue: {} steps queued, check() them first", queued());
  GS_CHECK(loss.numel() == 1 && (loss.dtype() == DType::f32 || loss.dtype() == DType::f64),
           "StepQueue: a step's loss is one f32 or f64 value");
  kernels::backend(device_).copy_to_host_queued(losses_ + queued(), loss.raw(), dtype_size(loss.dtype()));
  steps_.emplace_back(step, loss.dtype());
  return queued() == depth_;
}

std::optional<StepQueue::NotFinite> StepQueue::check() {
  kernels::backend(device_).synchronize();
  std::optional<NotFinite> first;
  for (int q = 0; q < queued() && !first; ++q) {
    double value = losses_[q];
    if (steps_[static_cast<std::size_t>(q)].second == DType::f32) {
      float f = 0;
      std::memcpy(&f, losses_ + q, sizeof f);
      value = f;
    }
    if (!std::isfinite(value)) first = NotFinite{steps_[static_cast<std::size_t>(q)].first, value};
  }
  steps_.clear();
  return first;
}

}  // namespace gs::experiments
