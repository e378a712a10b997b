// Fused optimizer steps, torch.optim's update rules as in kernels/cpu/optim.cpp; one thread per
// parameter. The GPU handles subnormals at full speed, so unlike the CPU backend nothing is
// flushed (values below 1.2e-38 in f32 may differ from the CPU's by that flush).
#include <cmath>

#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

namespace {

template <class T>
__global__ void sgd_kernel(i64 n, T* p, const T* g, T* buf, T lr, T wd, T mom, T damp, bool use_wd, bool use_momentum,
                           bool first_step, bool nesterov) {
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

// One thread: the step count and the bias corrections, in f64, as the CPU backend computes them.
__global__ void adam_advance_kernel(double lr, double beta1, double beta2, AdamCounters* c) {
  c->step += 1;
  c->step_size = lr / (1 - pow(beta1, c->step));
  c->bias_correction2_sqrt = sqrt(1 - pow(beta2, c->step));
}

template <class T>
__global__ void adam_kernel(i64 n, T* p, const T* g, T* m, T* v, const AdamCounters* c, T b1, T b2, T eps, T decay,
                            T wd, bool decoupled, bool coupled) {
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const T step_size = static_cast<T>(c->step_size), sqrt_bc2 = static_cast<T>(c->bias_correction2_sqrt);
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

}  // namespace

void CudaBackend::sgd_step(DType dtype, i64 n, void* param, const void* grad, void* momentum_buffer, const SgdStep& s) {
  if (n == 0) return;
  with_float(dtype, "sgd_step", [&]<class T>() {
    launch("sgd_step", n, blocks_for(n), threads_per_block, sgd_kernel<T>, n, static_cast<T*>(param),
           static_cast<const T*>(grad), static_cast<T*>(momentum_buffer), T(s.lr), T(s.weight_decay), T(s.momentum),
           T(1 - s.dampening), s.weight_decay != 0, s.momentum != 0, s.first_step, s.nesterov);
  });
}

void CudaBackend::adam_advance(const AdamStep& s, AdamCounters* counters) {
  launch("adam_advance", 1, 1, 1, adam_advance_kernel, s.lr, s.beta1, s.beta2, counters);
}

void CudaBackend::adam_step(DType dtype, i64 n, void* param, const void* grad, void* exp_avg, void* exp_avg_sq,
                            const AdamStep& s, const AdamCounters* counters) {
  if (n == 0) return;
  const bool decoupled = s.decoupled_weight_decay, coupled = !decoupled && s.weight_decay != 0;
  with_float(dtype, "adam_step", [&]<class T>() {
    launch("adam_step", n, blocks_for(n), threads_per_block, adam_kernel<T>, n, static_cast<T*>(param),
           static_cast<const T*>(grad), static_cast<T*>(exp_avg), static_cast<T*>(exp_avg_sq), counters, T(s.beta1),
           T(s.beta2), T(s.eps), T(1 - s.lr * s.weight_decay), T(s.weight_decay), decoupled, coupled);
  });
}

}  // namespace gs::kernels::cuda
