#pragma once
// Recording the device work of a stretch of host code once and replaying it: a CUDA graph. A
// replay repeats the recorded launches on the same addresses, with the same scalar arguments,
// for one host call; the host code that issued them does not run again.
#include <string>

#include "kernels/family.h"

namespace gs::kernels {

struct CapturedWork;  // a backend's recording, opaque to the engine

// Whether a GPU backend launches each kernel so that it may begin launching while the kernel
// before it on the stream finishes (Hopper's programmatic dependent launch), in a graph as in
// eager steps. Every kernel's first statement waits until the kernels before it are done, so
// only the launch's latency overlaps, never the arithmetic. Off by default until a GPU run has
// timed it (bench_cuda times the training step both ways); set for the whole process, like the
// GEMM tiling. A captured graph keeps the setting it was captured with. The CPU ignores it.
void set_overlapped_launches(bool on);
bool overlapped_launches();

class GraphKernels {
 public:
  virtual ~GraphKernels() = default;
  // Starts recording what this thread asks of the backend: launches and device-side copies are
  // recorded, not run. False, with the reason, where the backend cannot record (the CPU runs
  // every op as it is called).
  virtual bool begin_capture(std::string& why_not) {
    why_not = "the cpu backend runs every op as it is called; only the cuda backend records graphs";
    return false;
  }
  // Ends the recording begun by begin_capture. Null, with the reason, when something recorded
  // could not be (a copy from host memory, a wait for the device): the work did not run then,
  // and the caller runs it again without capture.
  virtual CapturedWork* end_capture(std::string& why_not) {
    why_not = "no capture was begun";
    return nullptr;
  }
  virtual void replay(CapturedWork* work) { (void)work; }
  virtual void destroy(CapturedWork* work) { (void)work; }
  // The number of kernel launches and copies a recording holds (progress lines, tests).
  virtual i64 recorded_operations(const CapturedWork* work) const {
    (void)work;
    return 0;
  }
};

}  // namespace gs::kernels
