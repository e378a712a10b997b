#pragma once
// An exception may not leave an OpenMP region: the runtime ends the process instead (std::terminate),
// so a bad_alloc for a thread's scratch, or a failed check deep in a tile, would kill a long run
// without a word. Work inside a region goes through guard(), which keeps the first error and
// skips the work that comes after it; rethrow(), after the region, hands that error to the caller.
//
//   RegionErrors errors;
//   #pragma omp parallel
//   {
//     std::vector<double> scratch;            // constructed empty: nothing to throw yet
//     errors.guard([&] { scratch.resize(size); });
//   #pragma omp for
//     for (i64 i = 0; i < n; ++i) errors.guard([&] { work(i, scratch); });
//   }
//   errors.rethrow();
#include <atomic>
#include <exception>
#include <mutex>

namespace gs::kernels::cpu {

class RegionErrors {
 public:
  template <class F>
  void guard(F&& work) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;  // the region's result is lost already
    try {
      work();
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // Call after the region, on the thread that opened it.
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace gs::kernels::cpu
