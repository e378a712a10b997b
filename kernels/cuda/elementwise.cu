// Activations, broadcasting binary ops, the deterministic sums back to a broadcast operand,
// axpby, bias rows and the total sum. Same formulas as kernels/cpu/elementwise.cpp.
#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/reduce.cuh"

namespace gs::kernels::cuda {

namespace {

__device__ inline i64 global_index() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }

template <class T>
__global__ void unary_kernel(Unary op, i64 n, const T* x, T* y) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i >= n) return;
  y[i] = activate(op, x[i]);
}

template <class T>
__global__ void unary_backward_kernel(Unary op, i64 n, const T* x, const T* y, const T* gy, T* gx) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i >= n) return;
  // Only the operand the derivative reads may be given (the other may be null).
  const bool from_input = op == Unary::relu || op == Unary::gelu;
  gx[i] = activation_backward(op, from_input ? x[i] : T(0), from_input ? T(0) : y[i], gy[i]);
}

// Broadcast shapes travel by value: four extents and two stride sets.
struct Strides4 {
  i64 v[4];
};
Strides4 strides(const std::array<i64, 4>& a) { return {{a[0], a[1], a[2], a[3]}}; }

template <class T>
__global__ void binary_kernel(Binary op, i64 n, Strides4 out, Strides4 as, Strides4 bs, const T* x, const T* y, T* o) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i >= n) return;
  const i64 i3 = i % out.v[3], r2 = i / out.v[3];
  const i64 i2 = r2 % out.v[2], r1 = r2 / out.v[2];
  const i64 i1 = r1 % out.v[1], i0 = r1 / out.v[1];
  const T p = x[i0 * as.v[0] + i1 * as.v[1] + i2 * as.v[2] + i3 * as.v[3]];
  const T q = y[i0 * bs.v[0] + i1 * bs.v[1] + i2 * bs.v[2] + i3 * bs.v[3]];
  o[i] = op == Binary::add ? p + q : (op == Binary::sub ? p - q : p * q);
}

// One thread per operand element, for short reductions: it walks the broadcast dimensions in
// output order, the order the CPU backend adds in, so the sums come out the same on every run.
template <class T>
__global__ void reduce_to_operand_kernel(i64 operand_numel, Strides4 out, Strides4 os, T scale, const T* g_out,
                                         Strides4 other_s, const T* other, T* g) {
  begin_after_preceding_kernels();
  const i64 e = global_index();
  if (e >= operand_numel) return;
  i64 lo[4], hi[4];
  for (int d = 0; d < 4; ++d) {
    if (os.v[d] != 0) {
      lo[d] = (e / os.v[d]) % out.v[d];
      hi[d] = lo[d] + 1;
    } else {
      lo[d] = 0;
      hi[d] = out.v[d];
    }
  }
  T acc = T(0);
  for (i64 i0 = lo[0]; i0 < hi[0]; ++i0)
    for (i64 i1 = lo[1]; i1 < hi[1]; ++i1)
      for (i64 i2 = lo[2]; i2 < hi[2]; ++i2)
        for (i64 i3 = lo[3]; i3 < hi[3]; ++i3) {
          T v = g_out[((i0 * out.v[1] + i1) * out.v[2] + i2) * out.v[3] + i3];
          if (other)
            v *= other[i0 * other_s.v[0] + i1 * other_s.v[1] + i2 * other_s.v[2] + i3 * other_s.v[3]];
          acc += v;
        }
  g[e] = scale == T(1) ? acc : acc * scale;
}

// One block per operand element, for long reductions (a convolution's bias gradient sums images
// × pixels values per filter; a thread each would leave the device idle): thread t adds the
// broadcast positions t, t + threads, ... in order, then the block adds its threads' sums in a
// fixed tree. The partition depends on the sizes only, so every run gives the same sums.
constexpr int reduce_block_threads = 256;
template <class T>
__global__ void __launch_bounds__(reduce_block_threads)
    reduce_to_operand_blocks_kernel(i64 reduced, Strides4 out, Strides4 os, T scale, const T* g_out, Strides4 other_s,
                                    const T* other, T* g) {
  begin_after_preceding_kernels();
  __shared__ T partial[reduce_block_threads];
  const i64 e = blockIdx.x;
  i64 fixed[4];  // this element's index along each dimension the operand has
  for (int d = 0; d < 4; ++d) fixed[d] = os.v[d] != 0 ? (e / os.v[d]) % out.v[d] : 0;
  T acc = T(0);
  for (i64 t = threadIdx.x; t < reduced; t += reduce_block_threads) {
    i64 idx[4], rest = t;  // t over the broadcast dimensions, the last fastest
    for (int d = 3; d >= 0; --d) {
      if (os.v[d] != 0) {
        idx[d] = fixed[d];
      } else {
        idx[d] = rest % out.v[d];
        rest /= out.v[d];
      }
    }
    T v = g_out[((idx[0] * out.v[1] + idx[1]) * out.v[2] + idx[2]) * out.v[3] + idx[3]];
    if (other) v *= other[idx[0] * other_s.v[0] + idx[1] * other_s.v[1] + idx[2] * other_s.v[2] + idx[3] * other_s.v[3]];
    acc += v;
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int half = reduce_block_threads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) g[e] = scale == T(1) ? partial[0] : partial[0] * scale;
}

template <class T>
__global__ void axpby_kernel(i64 n, T alpha, const T* x, T beta, T* y) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i < n) y[i] = beta == T(0) ? alpha * x[i] : alpha * x[i] + beta * y[i];
}

template <class T>
__global__ void broadcast_rows_kernel(i64 rows, i64 cols, const T* row, T* y) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i < rows * cols) y[i] = row[i % cols];
}

// One thread per column, rows in order: the CPU backend's order.
template <class T>
__global__ void sum_rows_kernel(i64 rows, i64 cols, const T* x, T* y) {
  begin_after_preceding_kernels();
  const i64 c = global_index();
  if (c >= cols) return;
  T acc = T(0);
  for (i64 r = 0; r < rows; ++r) acc += x[r * cols + c];
  y[c] = acc;
}

template <class T>
struct ValueTerm {
  const T* x;
  __device__ double operator()(i64 i) const { return static_cast<double>(x[i]); }
};
template <class T>
struct StoreTotal {
  T* y;
  __device__ void operator()(double total) const { *y = static_cast<T>(total); }
};

}  // namespace

void CudaBackend::unary(Unary op, DType dtype, i64 n, const void* x, void* y) {
  if (n == 0) return;
  with_float(dtype, "unary", [&]<class T>() {
    launch("unary", n, blocks_for(n), threads_per_block, unary_kernel<T>, op, n, static_cast<const T*>(x),
           static_cast<T*>(y));
  });
}

void CudaBackend::unary_backward(Unary op, DType dtype, i64 n, const void* x, const void* y, const void* gy, void* gx) {
  if (n == 0) return;
  with_float(dtype, "unary_backward", [&]<class T>() {
    launch("unary_backward", n, blocks_for(n), threads_per_block, unary_backward_kernel<T>, op, n,
           static_cast<const T*>(x), static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx));
  });
}

void CudaBackend::binary(Binary op, DType dtype, const Broadcast& b, const void* x, const void* y, void* out) {
  const i64 n = b.numel();
  if (n == 0) return;
  with_float(dtype, "binary", [&]<class T>() {
    launch("binary", n, blocks_for(n), threads_per_block, binary_kernel<T>, op, n, strides(b.out), strides(b.a_stride),
           strides(b.b_stride), static_cast<const T*>(x), static_cast<const T*>(y), static_cast<T*>(out));
  });
}

void CudaBackend::reduce_to_operand(DType dtype, const Broadcast& b, const std::array<i64, 4>& operand_stride,
                                    i64 operand_numel, double scale, const void* g_out,
                                    const std::array<i64, 4>& other_stride, const void* other, void* g_operand) {
  if (operand_numel == 0) return;
  // Terms per operand element: the product of the dimensions the operand is broadcast along.
  i64 reduced = 1;
  for (int d = 0; d < 4; ++d)
    if (operand_stride[static_cast<std::size_t>(d)] == 0) reduced *= b.out[static_cast<std::size_t>(d)];
  with_float(dtype, "reduce_to_operand", [&]<class T>() {
    if (reduced >= 1024) {
      launch("reduce_to_operand (a block per element)", operand_numel, static_cast<unsigned>(operand_numel),
             reduce_block_threads, reduce_to_operand_blocks_kernel<T>, reduced, strides(b.out), strides(operand_stride),
             static_cast<T>(scale), static_cast<const T*>(g_out), strides(other_stride), static_cast<const T*>(other),
             static_cast<T*>(g_operand));
      return;
    }
    launch("reduce_to_operand", operand_numel, blocks_for(operand_numel), threads_per_block,
           reduce_to_operand_kernel<T>, operand_numel, strides(b.out), strides(operand_stride), static_cast<T>(scale),
           static_cast<const T*>(g_out), strides(other_stride), static_cast<const T*>(other),
           static_cast<T*>(g_operand));
  });
}

void CudaBackend::axpby(DType dtype, i64 n, double alpha, const void* x, double beta, void* y) {
  if (n == 0) return;
  with_float(dtype, "axpby", [&]<class T>() {
    launch("axpby", n, blocks_for(n), threads_per_block, axpby_kernel<T>, n, static_cast<T>(alpha),
           static_cast<const T*>(x), static_cast<T>(beta), static_cast<T*>(y));
  });
}

void CudaBackend::broadcast_rows(DType dtype, i64 rows, i64 cols, const void* row, void* y) {
  if (rows * cols == 0) return;
  with_float(dtype, "broadcast_rows", [&]<class T>() {
    launch("broadcast_rows", rows * cols, blocks_for(rows * cols), threads_per_block, broadcast_rows_kernel<T>, rows,
           cols, static_cast<const T*>(row), static_cast<T*>(y));
  });
}

void CudaBackend::sum_rows(DType dtype, i64 rows, i64 cols, const void* x, void* y) {
  if (cols == 0) return;
  with_float(dtype, "sum_rows", [&]<class T>() {
    launch("sum_rows", rows * cols, blocks_for(cols), threads_per_block, sum_rows_kernel<T>, rows, cols,
           static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void CudaBackend::sum(DType dtype, i64 n, const void* x, void* y) {
  with_float(dtype, "sum", [&]<class T>() {
    deterministic_sum("sum", n, ValueTerm<T>{static_cast<const T*>(x)}, StoreTotal<T>{static_cast<T*>(y)});
  });
}

}  // namespace gs::kernels::cuda
