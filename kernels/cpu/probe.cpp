// The NTK probe's tile arithmetic. The probes call these from inside their own parallel loop over
// tiles, so each call runs on the calling thread.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/lane_sum.h"

namespace gs::kernels::cpu {

void CpuBackend::add_gram_weighted(DType dtype, const KernelTile& tile, const void* tv, const void* gv, i64 ldg,
                                   void* kv, bool accumulate) {
  with_float_type(dtype, "add_gram_weighted", [&]<class T>() {
    const T* t = static_cast<const T*>(tv);
    const T* g = static_cast<const T*>(gv);
    T* k = static_cast<T*>(kv);
    const i64 c = tile.classes, cols = tile.cols();
    for (i64 r = 0; r < tile.rows(); ++r) {
      const T* grow = g + (tile.i0 + r / c) * ldg + tile.j0;
      const T* trow = t + r * cols;
      T* out = k + r * tile.ldk;
      for (i64 j = 0; j < tile.nj; ++j) {  // one input-Gram value per run of C columns
        const T gj = grow[j];
        if (accumulate)
          for (i64 b = 0; b < c; ++b) out[j * c + b] += trow[j * c + b] * gj;
        else
          for (i64 b = 0; b < c; ++b) out[j * c + b] = trow[j * c + b] * gj;
      }
    }
  });
}

void CpuBackend::add_output_block(DType dtype, const KernelTile& tile, double alpha2, const void* gv, i64 ldg, void* kv) {
  with_float_type(dtype, "add_output_block", [&]<class T>() {
    const T* g = static_cast<const T*>(gv);
    T* k = static_cast<T*>(kv);
    const T a2 = static_cast<T>(alpha2);
    const i64 c = tile.classes;
    for (i64 i = 0; i < tile.ni; ++i)
      for (i64 a = 0; a < c; ++a) {  // row (i, a) gets α² G[i, j] at columns (j, a)
        T* row = k + (i * c + a) * tile.ldk + a;
        const T* gi = g + (tile.i0 + i) * ldg + tile.j0;
        for (i64 j = 0; j < tile.nj; ++j) row[j * c] += a2 * gi[j];
      }
  });
}

void CpuBackend::dot_f64(DType dtype, i64 n, const void* xv, const void* yv, double* out) {
  with_float_type(dtype, "dot_f64", [&]<class T>() {
    const T* x = static_cast<const T*>(xv);
    const T* y = static_cast<const T*>(yv);
    out[0] = lane_sum(0, n, [&](i64 q) { return static_cast<double>(x[q]) * static_cast<double>(y[q]); });
  });
}

}  // namespace gs::kernels::cpu
