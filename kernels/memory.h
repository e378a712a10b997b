#pragma once
// Device memory: allocation, copies across the host boundary, fills and dtype conversion.
#include <cstddef>
#include <cstdint>

#include "kernels/family.h"

namespace gs::kernels {

class MemoryKernels {
 public:
  virtual ~MemoryKernels() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  // Fills `bytes` bytes at ptr with ones (NaN as f32 or f64, −1 as i32), in order with the work
  // issued around it, and without a kernel launch (tests: gs::set_allocation_poisoning).
  virtual void poison(void* ptr, std::size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  // Host memory for queued copies: page-locked on a GPU, so that the device copies it directly.
  virtual void* allocate_host(std::size_t bytes) = 0;
  virtual void release_host(void* ptr) = 0;
  // Copies that return at once and run in order with the kernels issued around them (the cpu
  // copies at once). The host memory, from allocate_host, must stay as it is, and a copy into it
  // unread, until synchronize() returns. Not while a graph is being captured.
  virtual void copy_from_host_queued(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void copy_to_host_queued(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void synchronize() = 0;  // every queued copy and kernel has finished
  // y[i] = value, written in y's dtype (exact for i32 indices).
  virtual void fill(DType dtype, i64 n, double value, void* y) = 0;
  // y = x converted between any two dtypes (f32, f64, i32); i32 <- float truncates toward zero.
  virtual void convert(DType from, DType to, i64 n, const void* x, void* y) = 0;
  // y[r, :] = x[indices[r], :] for r < rows, rows of row_elements values (a batch gathered from a
  // dataset where it lives). An index outside [0, source_rows) gives a row of NaN (−1 for i32)
  // instead of a read outside x.
  virtual void gather_rows(DType dtype, i64 rows, i64 row_elements, i64 source_rows, const void* x,
                           const std::int32_t* indices, void* y) = 0;
};

}  // namespace gs::kernels
