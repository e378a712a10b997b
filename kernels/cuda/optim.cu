// Fused optimizer steps, torch.optim's update rules as in kernels/cpu/optim.cpp; one thread per
// parameter. The GPU handles subnormals at full speed, so unlike the CPU backend nothing is
// flushed (values below 1.2e-38 in f32 may differ from the CPU's by that flush).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

namespace {

template <class T>
__global__ void sgd_kernel(i64 n, T* p, const T* g, T* buf, T lr, T wd, T mom, T damp, bool use_wd, bool use_momentum,
                           bool first_step, bool nesterov) {
  begin_after_preceding_kernels();
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T d = g[i];
  if (use_wd) d += wd * p[i];
  if (use_momentum) {
    buf[i] = first_step ? d : mom * buf[i] + damp * d;
    d = nesterov ? d + mom * buf[i] : buf[i];
  }
  p[i] -= lr * d;
}

// The constants of one Adam step, as the kernels take them.
template <class T>
struct AdamConstants {
  T b1, b2, eps, decay, wd;
  bool decoupled, coupled;
  double lr, beta1, beta2;  // for the bias corrections, in f64
};

template <class T>
AdamConstants<T> constants_of(const AdamStep& s) {
  const bool decoupled = s.decoupled_weight_decay;
  return {T(s.beta1), T(s.beta2), T(s.eps), T(1 - s.lr * s.weight_decay), T(s.weight_decay), decoupled,
          !decoupled && s.weight_decay != 0, s.lr, s.beta1, s.beta2};
}

// Element i of one tensor: torch's update, in the order kernels/cpu/optim.cpp computes it.
template <class T>
__device__ void adam_update(i64 i, T* p, const T* g, T* m, T* v, const AdamCorrections& c, const AdamConstants<T>& k) {
  const T b1 = k.b1, b2 = k.b2, eps = k.eps, decay = k.decay, wd = k.wd;
  const bool decoupled = k.decoupled, coupled = k.coupled;
  const T step_size = static_cast<T>(c.step_size), sqrt_bc2 = static_cast<T>(c.sqrt_bc2);
  T gi = g[i];
  T pi = p[i];
  if (decoupled) pi *= decay;
  if (coupled) gi += wd * pi;
  const T mi = m[i] + (gi - m[i]) * (T(1) - b1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
  const T vi = v[i] * b2 + (T(1) - b2) * gi * gi;
  const T denom = sqrt(vi) / sqrt_bc2 + eps;
  m[i] = mi;
  v[i] = vi;
  p[i] = pi + -step_size * (mi / denom);
}

// Up to adam_batch tensors in one launch, passed by value (about 1 KB of kernel arguments): the
// blocks of tensor t are [first_block[t], first_block[t + 1]).
constexpr int adam_batch = 16;

template <class T>
struct AdamBatch {
  int count = 0;
  i64 first_block[adam_batch + 1] = {};
  i64 n[adam_batch] = {};
  T* p[adam_batch] = {};
  const T* g[adam_batch] = {};
  T* m[adam_batch] = {};
  T* v[adam_batch] = {};
};

// Thread 0 of every block reads the step count and computes the corrections of the next step.
// With count_step, each block then takes a ticket, and the last block to finish stores the new
// count: every block has read the old one by then, and the next launch sees the new one.
template <class T>
__global__ void adam_batch_kernel(AdamBatch<T> batch, AdamCounters* c, AdamConstants<T> k, bool count_step) {
  begin_after_preceding_kernels();
  __shared__ AdamCorrections corrections;
  if (threadIdx.x == 0) corrections = adam_corrections(k.lr, k.beta1, k.beta2, c->step + 1);
  __syncthreads();
  const i64 block = blockIdx.x;
  int t = 0;
  while (t + 1 < batch.count && batch.first_block[t + 1] <= block) ++t;
  const i64 i = (block - batch.first_block[t]) * blockDim.x + threadIdx.x;
  if (i < batch.n[t]) adam_update(i, batch.p[t], batch.g[t], batch.m[t], batch.v[t], corrections, k);
  if (count_step && threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(&c->finished_blocks, 1ULL) == gridDim.x - 1) {
      c->step += 1;
      c->finished_blocks = 0;
    }
  }
}

}  // namespace

void CudaBackend::sgd_step(DType dtype, i64 n, void* param, const void* grad, void* momentum_buffer, const SgdStep& s) {
  if (n == 0) return;
  with_float(dtype, "sgd_step", [&]<class T>() {
    launch("sgd_step", n, blocks_for(n), threads_per_block, sgd_kernel<T>, n, static_cast<T*>(param),
           static_cast<const T*>(grad), static_cast<T*>(momentum_buffer), T(s.lr), T(s.weight_decay), T(s.momentum),
           T(1 - s.dampening), s.weight_decay != 0, s.momentum != 0, s.first_step, s.nesterov);
  });
}

void CudaBackend::adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s,
                             AdamCounters* counters, bool count_step) {
  with_float(dtype, "adam_steps", [&]<class T>() {
    std::vector<AdamBatch<T>> batches(1);
    for (const AdamTensor& x : tensors) {
      if (x.n == 0) continue;
      if (batches.back().count == adam_batch) batches.emplace_back();
      AdamBatch<T>& batch = batches.back();
      const int b = batch.count++;
      batch.n[b] = x.n;
      batch.p[b] = static_cast<T*>(x.param);
      batch.g[b] = static_cast<const T*>(x.grad);
      batch.m[b] = static_cast<T*>(x.exp_avg);
      batch.v[b] = static_cast<T*>(x.exp_avg_sq);
      batch.first_block[b + 1] = batch.first_block[b] + blocks_for(x.n);
    }
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const AdamBatch<T>& batch = batches[b];
      const bool last = b + 1 == batches.size();
      if (batch.count == 0 && !(last && count_step)) continue;
      i64 values = 0;
      for (int t = 0; t < batch.count; ++t) values += batch.n[t];
      // A step with no values still counts: one block with nothing to update.
      const int blocks = std::max<int>(1, static_cast<int>(batch.first_block[batch.count]));
      launch("adam_steps", values, blocks, threads_per_block, adam_batch_kernel<T>, batch, counters, constants_of<T>(s),
             last && count_step);
    }
  });
}

}  // namespace gs::kernels::cuda
