#include "engine/step_graph.h"

#include <exception>

#include "engine/allocator.h"
#include "kernels/backend.h"

namespace gs {

std::unique_ptr<StepGraph> StepGraph::capture(Device device, const std::function<void()>& work, std::string& why_not) {
  auto& be = kernels::backend(device);
  GraphPool* pool = begin_graph_pool_capture(device);
  if (!be.begin_capture(why_not)) {
    release_graph_pool(device, pool);
    return nullptr;
  }
  kernels::CapturedWork* captured = nullptr;
  try {
    work();
    captured = be.end_capture(why_not);
  } catch (const std::exception& e) {
    // Most often a call the capture refused (a read-back); the capture must end either way.
    std::string ignored;
    be.destroy(be.end_capture(ignored));
    why_not = e.what();
  }
  end_graph_pool_capture(device);
  if (!captured) {
    release_graph_pool(device, pool);
    return nullptr;
  }
  return std::unique_ptr<StepGraph>(new StepGraph(device, pool, captured));
}

StepGraph::~StepGraph() {
  kernels::backend(device_).destroy(work_);
  release_graph_pool(device_, pool_);
}

void StepGraph::replay() { kernels::backend(device_).replay(work_); }

std::int64_t StepGraph::operations() const { return kernels::backend(device_).recorded_operations(work_); }

}  // namespace gs
