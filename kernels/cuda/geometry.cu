// The geometry probe's anchor problems on the device. solve_anchors gives each Gaussian vector
// t one block, which finds its max-projection point and, unless t is interior, runs the
// CPU's Lawson–Hanson (kernels/cpu/geometry.cpp) step for step: the same entering column, the
// same step back, the Cholesky factor of the passive set grown a row at a time. The threads of
// the block share each step: the gradient and the searches by point, the triangular solves by
// row, going column by column (one barrier per column). The forward sums subtract in the CPU's
// order; the backward solve subtracts in the reverse order, so the two differ by rounding only.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/anchor_terms.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/reduce.cuh"

namespace gs::kernels::cuda {

namespace {

constexpr int anchor_threads = 64;

// The work buffer of solve_anchors: the table of manifolds, then one slab of NNLS state per block
// of a launch. It grows to what a call needs, at most max_slab_bytes of slabs (the t vectors of
// a larger call go in several launches), and is kept for the next call. The emulated build keeps
// it small, so that the tests' few hundred t vectors take several launches there.
#ifdef GROKSCOPE_CUDA_EMULATED
constexpr std::size_t max_slab_bytes = std::size_t(64) << 10;
#else
constexpr std::size_t max_slab_bytes = std::size_t(1) << 30;
#endif

void* geometry_buffer(std::size_t bytes) {
  static void* buffer = nullptr;
  static std::size_t capacity = 0;
  if (bytes > capacity) {
    if (buffer) GS_CUDA_CHECK(cudaFree(buffer), "growing the geometry probe's work buffer");
    buffer = nullptr;
    capacity = 0;
    GS_CUDA_CHECK(cudaMalloc(&buffer, bytes), "the geometry probe's work buffer, " + std::to_string(bytes) + " bytes");
    capacity = bytes;
  }
  return buffer;
}

// A block's NNLS state: the Cholesky factor, always in global memory (a slab of the work
// buffer), and five vectors and two flag arrays of one entry per point, in shared memory when
// the manifolds have at most shared_points points (they are read at every step of the solves),
// else in the slab after the factor. The passive set never holds more columns than G's rank,
// at most min(points, dims).
constexpr int shared_points = 256;

struct SlabLayout {
  i64 points = 0, rank = 0;
  __host__ __device__ bool vectors_in_shared() const { return points <= shared_points; }
  __host__ __device__ i64 factor_doubles() const { return rank * (rank + 1) / 2; }
  __host__ __device__ i64 bytes() const {
    return (factor_doubles() + (vectors_in_shared() ? 0 : 5 * points)) * 8 + (vectors_in_shared() ? 0 : 2 * points * 4);
  }
};

struct NnlsSlab {
  double* l;     // the Cholesky factor of G_PP, packed by rows: row i at i(i+1)/2
  double* z;     // the multipliers, written to the output row at the end
  double* w;     // Aᵀy − G z
  double* sums;  // the running sums of the column-by-column triangular solves
  double* x;     // G_PP⁻¹ (Aᵀy)_P, in the order of `columns`
  double* aty;
  int* columns;  // the passive set, in the order its columns joined
  int* passive;  // one flag per point
};

// `vectors` and `flags` are the block's shared arrays, used when the layout says so.
__device__ NnlsSlab slab_of(const SlabLayout& layout, void* scratch, i64 slab, double* vectors, int* flags) {
  char* base = static_cast<char*>(scratch) + slab * layout.bytes();
  NnlsSlab s;
  s.l = reinterpret_cast<double*>(base);
  const i64 n = layout.vectors_in_shared() ? shared_points : layout.points;
  double* v = layout.vectors_in_shared() ? vectors : s.l + layout.factor_doubles();
  int* f = layout.vectors_in_shared() ? flags : reinterpret_cast<int*>(v + 5 * n);
  s.z = v;
  s.w = v + n;
  s.sums = v + 2 * n;
  s.x = v + 3 * n;
  s.aty = v + 4 * n;
  s.columns = f;
  s.passive = f + n;
  return s;
}

__device__ inline double& factor(double* l, i64 i, i64 j) { return l[i * (i + 1) / 2 + j]; }

// The block's largest value and its index, the lowest index on a tie; index −1 means no
// candidate. Every thread gets the winner.
__device__ void block_argmax(double& value, int& index) {
  __shared__ double values[anchor_threads];
  __shared__ int indices[anchor_threads];
  const int i = static_cast<int>(threadIdx.x);
  values[i] = value;
  indices[i] = index;
  __syncthreads();
  for (int half = anchor_threads / 2; half > 0; half >>= 1) {
    if (i < half) {
      const double v = values[i + half];
      const int j = indices[i + half];
      if (j >= 0 && (indices[i] < 0 || v > values[i] || (v == values[i] && j < indices[i]))) {
        values[i] = v;
        indices[i] = j;
      }
    }
    __syncthreads();
  }
  value = values[0];
  index = indices[0];
  __syncthreads();  // before the next call writes the buffers
}

__device__ double block_min(double value) {
  __shared__ double values[anchor_threads];
  const int i = static_cast<int>(threadIdx.x);
  values[i] = value;
  __syncthreads();
  for (int half = anchor_threads / 2; half > 0; half >>= 1) {
    if (i < half && values[i + half] < values[i]) values[i] = values[i + half];
    __syncthreads();
  }
  const double out = values[0];
  __syncthreads();
  return out;
}

// True on every thread when `mine` holds on every thread.
__device__ bool block_all(bool mine) {
  __shared__ int all;
  if (threadIdx.x == 0) all = 1;
  __syncthreads();
  if (!mine) all = 0;  // every writer writes the same value
  __syncthreads();
  const bool out = all != 0;
  __syncthreads();
  return out;
}

// Appends column q to the factor, as PassiveCholesky::add: row k of L solves L_PP r = G_P,q
// column by column, then its diagonal is √(G_qq − ‖r‖²). False (on every thread) when q is
// numerically dependent on the passive set.
__device__ bool add_column(const NnlsSlab& st, int* k_shared, const double* gram, i64 m, int q) {
  const int k = *k_shared;
  double* row = st.l + static_cast<i64>(k) * (k + 1) / 2;
  for (int i = static_cast<int>(threadIdx.x); i < k; i += anchor_threads) st.sums[i] = gram[q * m + st.columns[i]];
  __syncthreads();
  for (int i = 0; i < k; ++i) {
    // Every thread forms r_i from the sum finished at the last barrier; the owners of later
    // rows subtract its share from theirs.
    const double r = st.sums[i] / factor(st.l, i, i);
    for (int j = i + 1 + static_cast<int>(threadIdx.x); j < k; j += anchor_threads) st.sums[j] -= r * factor(st.l, j, i);
    if (threadIdx.x == 0) row[i] = r;
    __syncthreads();
  }
  __shared__ int added;
  if (threadIdx.x == 0) {
    const double g_qq = gram[q * m + q];
    double diag = g_qq;
    for (int i = 0; i < k; ++i) diag -= row[i] * row[i];
    added = diag > 1e-14 * fmax(1.0, g_qq);
    if (added) {
      row[k] = sqrt(diag);
      st.columns[k] = q;
      *k_shared = k + 1;
    }
  }
  __syncthreads();
  const bool out = added != 0;
  __syncthreads();
  return out;
}

// x = G_PP⁻¹ (Aᵀy)_P: L y = b forward, then Lᵀ x = y backward, a column per step.
__device__ void solve_passive(const NnlsSlab& st, int k) {
  const int me = static_cast<int>(threadIdx.x);
  for (int i = me; i < k; i += anchor_threads) st.sums[i] = st.aty[st.columns[i]];
  __syncthreads();
  for (int i = 0; i < k; ++i) {
    const double y = st.sums[i] / factor(st.l, i, i);
    for (int j = i + 1 + me; j < k; j += anchor_threads) st.sums[j] -= factor(st.l, j, i) * y;
    if (me == 0) st.x[i] = y;
    __syncthreads();
  }
  for (int i = me; i < k; i += anchor_threads) st.sums[i] = st.x[i];
  __syncthreads();
  for (int i = k - 1; i >= 0; --i) {
    const double x = st.sums[i] / factor(st.l, i, i);
    for (int j = me; j < i; j += anchor_threads) st.sums[j] -= factor(st.l, i, j) * x;
    if (me == 0) st.x[i] = x;
    __syncthreads();
  }
}

// Lawson–Hanson on the Gram from z = 0, with st.aty set: leaves the solution in st.z.
__device__ void lawson_hanson(const NnlsSlab& st, const double* gram, i64 m, double tol) {
  const int me = static_cast<int>(threadIdx.x);
  for (i64 mu = me; mu < m; mu += anchor_threads) {
    st.z[mu] = 0;
    st.passive[mu] = 0;
  }
  __shared__ int k_shared;
  if (me == 0) k_shared = 0;
  __syncthreads();
  const i64 max_iterations = 3 * m + 10;
  for (i64 outer = 0; outer < max_iterations; ++outer) {
    // w = Aᵀy − G z over the passive columns in their order, and the entering column: the
    // largest w above the tolerance among the active ones.
    const int k = k_shared;
    double best_w = tol;
    int entering = -1;
    for (i64 j = me; j < m; j += anchor_threads) {
      double w = st.aty[j];
      for (int i = 0; i < k; ++i) w -= st.z[st.columns[i]] * gram[st.columns[i] * m + j];
      st.w[j] = w;
      if (!st.passive[j] && w > best_w) {
        best_w = w;
        entering = static_cast<int>(j);
      }
    }
    block_argmax(best_w, entering);
    if (entering < 0) return;  // KKT holds
    if (!add_column(st, &k_shared, gram, m, entering)) return;  // dependent: z is optimal to rounding
    if (me == 0) st.passive[entering] = 1;
    __syncthreads();
    for (i64 inner = 0; inner < max_iterations; ++inner) {
      const int kp = k_shared;
      solve_passive(st, kp);
      bool positive = true;
      for (int i = me; i < kp; i += anchor_threads) positive = positive && st.x[i] > 0;
      if (block_all(positive)) {
        for (int i = me; i < kp; i += anchor_threads) st.z[st.columns[i]] = st.x[i];
        __syncthreads();
        break;
      }
      // Step from z towards x as far as z stays ≥ 0; the coordinates that reach 0 leave P.
      double step = 1.0;
      for (int i = me; i < kp; i += anchor_threads)
        if (st.x[i] <= 0) {
          const double zi = st.z[st.columns[i]];
          step = fmin(step, zi / (zi - st.x[i]));
        }
      step = block_min(step);
      for (int i = me; i < kp; i += anchor_threads) {
        const int c = st.columns[i];
        double zi = st.z[c];
        zi += step * (st.x[i] - zi);
        if (zi <= tol) {
          zi = 0;
          st.passive[c] = 0;
        }
        st.z[c] = zi;
      }
      __syncthreads();
      // Refactor the columns still passive, in their order.
      __shared__ int kept;
      if (me == 0) {
        int n = 0;
        for (int i = 0; i < kp; ++i)
          if (st.passive[st.columns[i]]) st.columns[n++] = st.columns[i];
        kept = n;
        k_shared = 0;
      }
      __syncthreads();
      const int keep = kept;
      for (int i = 0; i < keep; ++i)
        if (!add_column(st, &k_shared, gram, m, st.columns[i])) return;
    }
  }
}

// One block per t vector: block b of the launch takes the t at global index block0 + b, counted
// over the manifolds in order (first[i] is manifold i's first index; first[count] the total).
__global__ void solve_anchors_kernel(const AnchorProblem* table, const i64* first, int manifolds, i64 block0,
                                     double tol, SlabLayout layout, void* slabs) {
  begin_after_preceding_kernels();
  const i64 global = block0 + blockIdx.x;
  int lo = 0, hi = manifolds - 1;  // the last manifold whose first index is ≤ global
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (first[mid] <= global) lo = mid;
    else hi = mid - 1;
  }
  const AnchorProblem p = table[lo];
  const double *s = p.s, *t = p.t, *gram = p.gram, *proj = p.proj;
  const i64 m = p.points, d1 = p.dims, d = d1 - 1, n_t = p.count, q = global - first[lo];
  const int me = static_cast<int>(threadIdx.x);
  __shared__ double shared_vectors[5 * shared_points];
  __shared__ int shared_flags[2 * shared_points];
  const NnlsSlab st = slab_of(layout, slabs, blockIdx.x, shared_vectors, shared_flags);
  double* z_out = p.z + q * m;

  // The point of largest projection on t's first D coordinates.
  const double t_center = t[q * d1 + d];
  double best_proj = -INFINITY;
  int best = -1;
  for (i64 mu = me; mu < m; mu += anchor_threads) {
    const double v = proj[mu * n_t + q] - s[mu * d1 + d] * t_center;
    if (v > best_proj) {
      best_proj = v;
      best = static_cast<int>(mu);
    }
  }
  block_argmax(best_proj, best);
  if (best < 0) best = 0;
  if (t_center + best_proj + p.kappa < 0) {  // t is feasible: the anchor is that point
    for (i64 mu = me; mu < m; mu += anchor_threads) z_out[mu] = 0;
    if (me == 0) p.interior[q] = best + 1;
    return;
  }
  if (me == 0) p.interior[q] = 0;
  for (i64 mu = me; mu < m; mu += anchor_threads) st.aty[mu] = proj[mu * n_t + q] + p.kappa * s[mu * d1 + d];
  lawson_hanson(st, gram, m, tol);  // every return from it follows a barrier
  for (i64 mu = me; mu < m; mu += anchor_threads) z_out[mu] = st.z[mu];
}

// Per t: its anchor, the KKT residuals of its solve, its capacity and cosine terms.
__global__ void anchor_terms_kernel(AnchorProblem p, const double* sz, const double* gz, double* anchors, double* terms) {
  begin_after_preceding_kernels();
  const i64 q = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (q < p.count) anchor_row(p, q, sz, gz, anchors + q * p.dims, terms + q * anchor_term_count);
}

// mean[k] = Σ_q anchors[q, k] / n_t in increasing q, a thread per coordinate.
__global__ void anchor_mean_kernel(AnchorProblem p, const double* anchors, double* mean) {
  begin_after_preceding_kernels();
  const i64 k = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (k >= p.dims) return;
  double sum = 0;
  for (i64 q = 0; q < p.count; ++q) sum += anchors[q * p.dims + k] / static_cast<double>(p.count);
  mean[k] = sum;
}

__global__ void radius_terms_kernel(AnchorProblem p, const double* anchors, const double* mean, double* terms) {
  begin_after_preceding_kernels();
  const i64 q = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (q < p.count) terms[q * anchor_term_count + radius_term] = radius_term_of(anchors + q * p.dims, mean, p.dims);
}

// layer_centers: one thread per feature, summing the rows in the CPU backend's order (the same
// values, bit for bit), reading a row across the threads.
__global__ void layer_centers_kernel(LayerClasses l, double* mean, double* centers) {
  begin_after_preceding_kernels();
  const i64 f = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (f >= l.features) return;
  const i64 stride = l.features;
  double mu = 0;
  for (i64 i = 0; i < l.rows; ++i) mu += l.x[i * stride + f] / static_cast<double>(l.rows);
  mean[f] = mu;
  for (i64 c = 0; c < l.classes; ++c) {
    const double size = l.class_first[c + 1] - l.class_first[c];
    double sum = 0;
    for (i64 at = l.class_first[c]; at < l.class_first[c + 1]; ++at)
      sum += (l.x[static_cast<i64>(l.class_rows[at]) * stride + f] - mu) / size;
    centers[c * stride + f] = sum;
  }
}

// The class whose rows include position `at` of class_rows.
__device__ i64 class_of(const LayerClasses& l, i64 at) {
  i64 lo = 0, hi = l.classes - 1;
  while (lo < hi) {
    const i64 mid = (lo + hi + 1) / 2;
    if (l.class_first[mid] <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// manifold_points, first pass: one block per row, its value minus the mean with the basis's
// directions projected out one after the other, written to its column of its class's work.
__global__ void project_points_kernel(LayerClasses l, const double* mean, const double* basis, i64 k, double* work) {
  begin_after_preceding_kernels();
  const i64 at = blockIdx.x, c = class_of(l, at), first = l.class_first[c], m = l.class_first[c + 1] - first;
  const i64 p = at - first, features = l.features;
  const double* row = l.x + static_cast<i64>(l.class_rows[at]) * features;
  double* w = work + features * first + p;  // feature f of this point at w[f · m]
  for (i64 f = threadIdx.x; f < features; f += blockDim.x) w[f * m] = row[f] - mean[f];
  for (i64 j = 0; j < k; ++j) {
    double partial = 0;
    for (i64 f = threadIdx.x; f < features; f += blockDim.x) partial += basis[f * k + j] * w[f * m];
    const double d = block_sum<threads_per_block>(partial);
    __syncthreads();  // every thread has read the sum before the next call reuses the buffer
    for (i64 f = threadIdx.x; f < features; f += blockDim.x) w[f * m] -= d * basis[f * k + j];
  }
}

// manifold_points, second pass: one block per class, one thread per feature (a row of the work
// array, in the CPU's order): the class's own mean, its norm, and the points centered and scaled.
__global__ void normalize_manifolds_kernel(LayerClasses l, double* work, double* norms) {
  begin_after_preceding_kernels();
  const i64 c = blockIdx.x, first = l.class_first[c], m = l.class_first[c + 1] - first, features = l.features;
  double* s = work + features * first;
  const auto own_mean = [&](i64 f) {
    double sum = 0;
    for (i64 p = 0; p < m; ++p) sum += s[f * m + p] / static_cast<double>(m);
    return sum;
  };
  double partial = 0;
  for (i64 f = threadIdx.x; f < features; f += blockDim.x) {
    const double mu = own_mean(f);
    partial += mu * mu;
  }
  const double norm = sqrt(block_sum<threads_per_block>(partial));
  double spread = 0;
  for (i64 f = threadIdx.x; f < features; f += blockDim.x) {
    const double mu = own_mean(f);
    for (i64 p = 0; p < m; ++p) {
      s[f * m + p] = (s[f * m + p] - mu) / norm;
      spread = fmax(spread, fabs(s[f * m + p]));
    }
  }
  spread = block_max<threads_per_block>(spread);
  if (threadIdx.x == 0) {
    norms[2 * c] = norm;
    norms[2 * c + 1] = spread;
  }
}

// span_coordinates: one block per manifold. For F > m, the Householder QR of its work array
// [F, m] column by column, the threads sharing the columns: for column k, every column j ≥ k
// takes its product with column k (rows k..F−1), then with v = a_k − α e_k (α = ∓‖a_k‖, the sign
// opposite to a_kk's, so that nothing cancels) each column j > k becomes a_j − τ (vᵀa_j) v,
// τ = 2 / vᵀv = 1 / (‖a_k‖² − α a_kk), and a_kk becomes α. A zero column is left as it is, as
// LAPACK leaves it. The rows of the work array are read across the threads (coalesced).
constexpr int span_threads = 256;

__global__ void span_coordinates_kernel(const SpanProblem* table, const i64* dots_first, double* dots_all) {
  begin_after_preceding_kernels();
  const SpanProblem p = table[blockIdx.x];
  const i64 f = p.features, m = p.points;
  double* a = p.work;
  if (f > m) {
    double* dots = dots_all + dots_first[blockIdx.x];
    __shared__ double alpha, tau;
    for (i64 k = 0; k < m; ++k) {
      for (i64 j = k + threadIdx.x; j < m; j += blockDim.x) {
        double sum = 0;
        for (i64 i = k; i < f; ++i) sum += a[i * m + k] * a[i * m + j];
        dots[j] = sum;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        const double norm2 = dots[k], akk = a[k * m + k];
        alpha = norm2 == 0 ? 0 : akk >= 0 ? -sqrt(norm2) : sqrt(norm2);
        tau = norm2 == 0 ? 0 : 1 / (norm2 - alpha * akk);
      }
      __syncthreads();
      for (i64 j = k + 1 + threadIdx.x; j < m; j += blockDim.x) {
        const double scale = tau * (dots[j] - alpha * a[k * m + j]);
        a[k * m + j] -= scale * (a[k * m + k] - alpha);
        for (i64 i = k + 1; i < f; ++i) a[i * m + j] -= scale * a[i * m + k];
      }
      __syncthreads();
      if (threadIdx.x == 0 && tau != 0) a[k * m + k] = alpha;
      __syncthreads();
    }
  }
  for (i64 i = threadIdx.x; i < m * p.dims(); i += blockDim.x) p.s[i] = span_coordinate(p, i);
}

}  // namespace

void CudaBackend::layer_centers(const LayerClasses& layer, double* mean, double* centers) {
  if (layer.features == 0) return;
  launch("layer_centers", layer.rows * layer.features, blocks_for(layer.features), threads_per_block, layer_centers_kernel,
         layer, mean, centers);
}

void CudaBackend::manifold_points(const LayerClasses& layer, const double* mean, const double* basis, i64 k, double* work,
                                  double* norms) {
  if (layer.rows == 0 || layer.classes == 0) return;
  const std::string what = "manifold_points (" + std::to_string(layer.rows) + " points of " +
                           std::to_string(layer.features) + " features, " + std::to_string(k) + " directions out)";
  launch(what.c_str(), layer.rows * layer.features, static_cast<int>(layer.rows), threads_per_block, project_points_kernel,
         layer, mean, basis, k, work);
  launch(what.c_str(), layer.rows * layer.features, static_cast<int>(layer.classes), threads_per_block,
         normalize_manifolds_kernel, layer, work, norms);
}

void CudaBackend::span_coordinates(const std::vector<SpanProblem>& manifolds) {
  if (manifolds.empty()) return;
  // In the work buffer: the table, the offsets of each manifold's m products, then the products.
  std::vector<i64> first(manifolds.size() + 1, 0);
  i64 largest = 0;
  for (std::size_t i = 0; i < manifolds.size(); ++i) {
    first[i + 1] = first[i] + manifolds[i].points;
    largest = std::max(largest, manifolds[i].points);
  }
  const std::size_t table_bytes = manifolds.size() * sizeof(SpanProblem), first_bytes = first.size() * sizeof(i64);
  const std::size_t header = (table_bytes + first_bytes + 255) / 256 * 256;
  char* buffer = static_cast<char*>(geometry_buffer(header + static_cast<std::size_t>(first.back()) * sizeof(double)));
  std::vector<char> head(table_bytes + first_bytes);
  std::memcpy(head.data(), manifolds.data(), table_bytes);
  std::memcpy(head.data() + table_bytes, first.data(), first_bytes);
  copy_from_host(buffer, head.data(), head.size());
  const std::string what = "span_coordinates (" + std::to_string(manifolds.size()) + " manifolds, up to " +
                           std::to_string(largest) + " points)";
  launch(what.c_str(), first.back(), static_cast<int>(manifolds.size()), span_threads, span_coordinates_kernel,
         reinterpret_cast<const SpanProblem*>(buffer), reinterpret_cast<const i64*>(buffer + table_bytes),
         reinterpret_cast<double*>(buffer + header));
}

void CudaBackend::solve_anchors(const std::vector<AnchorProblem>& manifolds, double tolerance) {
  // The table and the prefix of t counts go first in the buffer, then the slabs, each slab as
  // large as the largest manifold's.
  std::vector<i64> first(manifolds.size() + 1, 0);
  SlabLayout layout;
  for (std::size_t i = 0; i < manifolds.size(); ++i) {
    const AnchorProblem& p = manifolds[i];
    first[i + 1] = first[i] + p.count;
    layout.points = std::max(layout.points, p.points);
    layout.rank = std::max(layout.rank, std::min(p.points, p.dims));
  }
  const i64 total = first.back();
  if (total == 0) return;
  if (static_cast<std::size_t>(layout.bytes()) > max_slab_bytes)
    throw Error("geometry on the GPU: a manifold of " + std::to_string(layout.points) + " points needs " +
                std::to_string(layout.bytes() >> 20) + " MiB for one NNLS, more than the " +
                std::to_string(max_slab_bytes >> 20) + " MiB the solver takes; give the geometry probe fewer points per class");
  const std::size_t table_bytes = manifolds.size() * sizeof(AnchorProblem), first_bytes = first.size() * sizeof(i64);
  const std::size_t header = (table_bytes + first_bytes + 255) / 256 * 256;
  const i64 per_launch = std::min<i64>(total, static_cast<i64>(max_slab_bytes) / layout.bytes());
  char* buffer = static_cast<char*>(geometry_buffer(header + static_cast<std::size_t>(per_launch * layout.bytes())));
  std::vector<char> head(table_bytes + first_bytes);
  std::memcpy(head.data(), manifolds.data(), table_bytes);
  std::memcpy(head.data() + table_bytes, first.data(), first_bytes);
  copy_from_host(buffer, head.data(), head.size());
  const auto* table = reinterpret_cast<const AnchorProblem*>(buffer);
  const auto* first_d = reinterpret_cast<const i64*>(buffer + table_bytes);
  const std::string what = "solve_anchors (" + std::to_string(manifolds.size()) + " manifolds, " + std::to_string(total) +
                           " t vectors, up to " + std::to_string(layout.points) + " points)";
  for (i64 block0 = 0; block0 < total; block0 += per_launch) {
    const i64 blocks = std::min(per_launch, total - block0);
    launch(what.c_str(), blocks, static_cast<int>(blocks), anchor_threads, solve_anchors_kernel, table, first_d,
           static_cast<int>(manifolds.size()), block0, tolerance, layout, static_cast<void*>(buffer + header));
  }
}

void CudaBackend::anchor_terms(const AnchorProblem& p, const double* sz, const double* gz, double* anchors, double* terms) {
  if (p.count == 0) return;
  const std::string what = "anchor_terms (" + std::to_string(p.count) + " t vectors, " + std::to_string(p.points) +
                           " points of " + std::to_string(p.dims) + " dimensions)";
  launch(what.c_str(), p.count, blocks_for(p.count), threads_per_block, anchor_terms_kernel, p, sz, gz, anchors, terms);
  // The mean anchor goes in the work buffer (the solves before it on this stream are done).
  auto* mean = static_cast<double*>(geometry_buffer(static_cast<std::size_t>(p.dims) * sizeof(double)));
  launch(what.c_str(), p.dims, blocks_for(p.dims), threads_per_block, anchor_mean_kernel, p, anchors, mean);
  launch(what.c_str(), p.count, blocks_for(p.count), threads_per_block, radius_terms_kernel, p, anchors, mean, terms);
}

}  // namespace gs::kernels::cuda
