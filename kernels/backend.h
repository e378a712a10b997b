#pragma once
// A backend is one implementation of every kernel family. Ops look it up by the device of their
// operands; a build without CUDA has no cuda backend and says so instead of failing to link.
#include <string>

#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/geometry.h"
#include "kernels/graph.h"
#include "kernels/loss.h"
#include "kernels/memory.h"
#include "kernels/optim.h"
#include "kernels/probe.h"

namespace gs::kernels {

class Backend : public MemoryKernels,
                public GemmKernels,
                public ElementwiseKernels,
                public LossKernels,
                public ConvKernels,
                public OptimKernels,
                public ProbeKernels,
                public GeometryKernels,
                public GraphKernels {
 public:
  virtual const char* name() const = 0;
};

Backend& backend(Device device);
Backend& cpu_backend();
bool cuda_available();           // built with CUDA and a device is present
const char* cuda_unavailable_reason();
// What the CPU backend runs on, for logs and timings: OpenBLAS's build (its core included) and
// the number of OpenMP threads ("OpenBLAS 0.3.21 ... USE_OPENMP Haswell MAX_THREADS=64; OpenMP threads: 2").
std::string cpu_description();

}  // namespace gs::kernels
