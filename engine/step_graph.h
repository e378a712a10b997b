#pragma once
// A training step's device work as one CUDA graph: captured once, then replayed every step, so
// the host issues one launch per step instead of one per kernel (the MNIST MLP's AdamW step is
// about 60 of them). A replay repeats the captured kernels on the captured addresses with the
// captured scalars, so the step must read its inputs from buffers that outlive the graph (copy
// each batch into them before replay()), and host values baked into launches must not change
// (SGD's first-step flag: capture after one eager step).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "engine/dtype.h"

namespace gs {

struct GraphPool;
namespace kernels {
struct CapturedWork;
}

class StepGraph {
 public:
  // Runs `work` once under capture on `device`: its host code runs now, and its device work is
  // recorded but not run; replay() runs it. Returns null, with the reason, where the device
  // cannot capture (the cpu) or `work` did something a graph cannot hold (a copy from or to the
  // host, a wait for the device, an error). Its device work did not run then either: the caller
  // undoes what the host code counted and runs `work` again without capture.
  static std::unique_ptr<StepGraph> capture(Device device, const std::function<void()>& work, std::string& why_not);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  void replay();
  std::int64_t operations() const;  // kernel launches and device copies in the graph

 private:
  StepGraph(Device device, GraphPool* pool, kernels::CapturedWork* work) : device_(device), pool_(pool), work_(work) {}
  Device device_;
  GraphPool* pool_;
  kernels::CapturedWork* work_;
};

}  // namespace gs
