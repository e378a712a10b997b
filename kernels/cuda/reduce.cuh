#pragma once
// Deterministic sums on the device: no atomics, a fixed tree order that depends only on n.
// Pass 1: block b sums the terms of its contiguous chunk (threads stride through it, then a
// shared-memory tree); pass 2: one block sums the per-block partials and finishes the result.
// A short sum (a loss over one batch) is one block and one launch.
#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

// The block's values combined by a shared-memory tree (one buffer per Combine); every thread gets
// the result. A second call with the same Combine needs a barrier first: the buffer is reused.
template <int Threads, class Combine>
__device__ double block_reduce(double v, Combine combine) {
  __shared__ double buf[Threads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = Threads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) buf[threadIdx.x] = combine(buf[threadIdx.x], buf[threadIdx.x + s]);
    __syncthreads();
  }
  return buf[0];
}

struct Add {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct Max {  // a NaN loses, as in std::fmax
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};

template <int Threads>
__device__ double block_sum(double v) {
  return block_reduce<Threads>(v, Add{});
}
template <int Threads>
__device__ double block_max(double v) {
  return block_reduce<Threads>(v, Max{});
}

// Term(i) -> double; Finish(double total) writes the result.
template <class Term>
__global__ void partial_sums_kernel(i64 n, i64 chunk, Term term, double* partial) {
  begin_after_preceding_kernels();
  const i64 begin = blockIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n;
  double s = 0;
  for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) s += term(i);
  const double total = block_sum<threads_per_block>(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class Finish>
__global__ void finish_sum_kernel(int blocks, const double* partial, Finish finish) {
  begin_after_preceding_kernels();
  double s = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  const double total = block_sum<threads_per_block>(s);
  if (threadIdx.x == 0) finish(total);
}

template <class Term, class Finish>
__global__ void one_block_sum_kernel(i64 n, Term term, Finish finish) {
  begin_after_preceding_kernels();
  double s = 0;
  for (i64 i = threadIdx.x; i < n; i += blockDim.x) s += term(i);
  const double total = block_sum<threads_per_block>(s);
  if (threadIdx.x == 0) finish(total);
}

// Up to this many terms, one block sums them all (32 per thread): cheaper than a second launch,
// and a graph of a training step has one node fewer per loss.
constexpr i64 one_block_sum_max = 32 * threads_per_block;

// A device buffer of max_sum_blocks + 1 doubles (the partials, then one result slot), allocated
// once for the process.
double* sum_scratch();

template <class Term, class Finish>
void deterministic_sum(const char* what, i64 n, Term term, Finish finish) {
  if (n <= one_block_sum_max) {
    launch(what, n, 1, threads_per_block, one_block_sum_kernel<Term, Finish>, n, term, finish);
    return;
  }
  // Enough blocks to fill the device, never more than the scratch holds; the count is a
  // function of n only, so the order of additions is too.
  const i64 min_chunk = 4 * threads_per_block;
  i64 blocks = (n + min_chunk - 1) / min_chunk;
  if (blocks > max_sum_blocks) blocks = max_sum_blocks;
  if (blocks < 1) blocks = 1;
  const i64 chunk = (n + blocks - 1) / blocks;
  double* partial = sum_scratch();
  launch(what, n, static_cast<int>(blocks), threads_per_block, partial_sums_kernel<Term>, n, chunk, term, partial);
  launch(what, n, 1, threads_per_block, finish_sum_kernel<Finish>, static_cast<int>(blocks), partial, finish);
}

}  // namespace gs::kernels::cuda
