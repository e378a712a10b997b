#include "engine/probe/center_structure.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/cpu/region_errors.h"

namespace gs::probe {

namespace {

Matrix zeros(std::int64_t r, std::int64_t c) { return {r, c, std::vector<double>(static_cast<std::size_t>(r * c), 0.0)}; }

// The matrices here are at most P × P (P classes): plain loops beat a BLAS call's overhead, and
// the CG below calls this hundreds of thousands of times per layer. op(A) and op(B) are read in
// place (no transposed copies); each entry sums its products in order of the inner index.
Matrix matmul(const Matrix& a, const Matrix& b, bool ta = false, bool tb = false) {
  const std::int64_t m = ta ? a.cols : a.rows, k = ta ? a.rows : a.cols, n = tb ? b.rows : b.cols;
  Matrix out = zeros(m, n);
  for (std::int64_t i = 0; i < m; ++i) {
    double* row = out.v.data() + i * n;
    for (std::int64_t p = 0; p < k; ++p) {
      const double av = ta ? a.v[static_cast<std::size_t>(p * a.cols + i)] : a.v[static_cast<std::size_t>(i * k + p)];
      if (tb) {
        const double* bcol = b.v.data() + p;
        for (std::int64_t j = 0; j < n; ++j) row[j] += av * bcol[j * b.cols];
      } else {
        const double* brow = b.v.data() + p * n;
        for (std::int64_t j = 0; j < n; ++j) row[j] += av * brow[j];
      }
    }
  }
  return out;
}

double dot(const Matrix& a, const Matrix& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.v.size(); ++i) s += a.v[i] * b.v[i];
  return s;
}

// Q of the thin QR with a non-negative diagonal of R: the retraction onto the Stiefel manifold.
Matrix orthonormalize(Matrix a) {
  const std::int64_t m = a.rows, n = a.cols;
  std::vector<double> col(static_cast<std::size_t>(m * n)), tau(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) col[static_cast<std::size_t>(j * m + i)] = a(i, j);
  GS_CHECK(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, static_cast<int>(m), static_cast<int>(n), col.data(), static_cast<int>(m), tau.data()) == 0,
           "center structure: QR failed");
  std::vector<double> diag(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) diag[static_cast<std::size_t>(j)] = col[static_cast<std::size_t>(j * m + j)];
  GS_CHECK(LAPACKE_dorgqr(LAPACK_COL_MAJOR, static_cast<int>(m), static_cast<int>(n), static_cast<int>(n), col.data(), static_cast<int>(m),
                          tau.data()) == 0,
           "center structure: QR failed");
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      a(i, j) = col[static_cast<std::size_t>(j * m + i)] * (diag[static_cast<std::size_t>(j)] < 0 ? -1.0 : 1.0);
  return a;
}

// The same Q by modified Gram–Schmidt, applied twice ("twice is enough"): the retraction of the
// CG below, on frames of at most P × P that are already near-orthonormal, where LAPACK's
// per-call overhead cost more than the arithmetic.
Matrix retract(Matrix a) {
  const std::int64_t m = a.rows, n = a.cols;
  for (std::int64_t j = 0; j < n; ++j)
    for (int pass = 0; pass < 2; ++pass) {
      for (std::int64_t i = 0; i < j; ++i) {
        double d = 0;
        for (std::int64_t r = 0; r < m; ++r) d += a(r, i) * a(r, j);
        for (std::int64_t r = 0; r < m; ++r) a(r, j) -= d * a(r, i);
      }
      double norm = 0;
      for (std::int64_t r = 0; r < m; ++r) norm += a(r, j) * a(r, j);
      norm = std::sqrt(norm);
      GS_CHECK(norm > 0, "center structure: a search direction collapsed the frame (column {} of {})", j, n);
      for (std::int64_t r = 0; r < m; ++r) a(r, j) /= norm;
    }
  return a;
}

// Projection of a matrix onto the tangent space of the Stiefel manifold at V: G − V sym(VᵀG).
Matrix tangent(const Matrix& v, const Matrix& g) {
  Matrix vg = matmul(v, g, true, false);
  Matrix sym = vg;
  for (std::int64_t i = 0; i < sym.rows; ++i)
    for (std::int64_t j = 0; j < sym.cols; ++j) sym(i, j) = 0.5 * (vg(i, j) + vg(j, i));
  Matrix out = g, vs = matmul(v, sym);
  for (std::size_t i = 0; i < out.v.size(); ++i) out.v[i] -= vs.v[i];
  return out;
}

Matrix axpy(const Matrix& a, double s, const Matrix& b) {
  Matrix out = a;
  for (std::size_t i = 0; i < out.v.size(); ++i) out.v[i] += s * b.v[i];
  return out;
}

// The cost at V and what its gradient reuses: c = X V, E = C − c cᵀ, w_m = 1 / E_mm.
struct CostTerms {
  Matrix c, e;
  std::vector<double> w;
  double f = 0;
};

CostTerms cost_terms(const Matrix& x, const Matrix& cc, const Matrix& v) {
  const std::int64_t p = x.rows, k = v.cols;
  CostTerms t;
  t.c = matmul(x, v);  // P × k
  const Matrix& c = t.c;
  t.w.resize(static_cast<std::size_t>(p));
  for (std::int64_t m = 0; m < p; ++m) {
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) s += c(m, j) * c(m, j);
    t.w[static_cast<std::size_t>(m)] = 1 / (cc(m, m) - s);
  }
  // E is symmetric to the last bit (both products commute and sum in the same order), so only
  // its upper half is computed.
  t.e = zeros(p, p);
  Matrix& e = t.e;
  for (std::int64_t m = 0; m < p; ++m)
    for (std::int64_t n = m; n < p; ++n) {
      double s = 0;
      for (std::int64_t j = 0; j < k; ++j) s += c(m, j) * c(n, j);
      e(m, n) = e(n, m) = cc(m, n) - s;
    }
  const auto& w = t.w;
  for (std::int64_t m = 0; m < p; ++m)
    for (std::int64_t n = 0; n < p; ++n) t.f += 0.5 * e(m, n) * e(m, n) * w[m] * w[n];
  return t;
}

// ∂F/∂c_m = −2 w_m Σ_n E_mn w_n c_n + 2 w_m² c_m Σ_n E_mn² w_n;  ∂F/∂V = Xᵀ ∂F/∂c.
Matrix cost_gradient(const Matrix& x, const CostTerms& t) {
  const Matrix &c = t.c, &e = t.e;
  const auto& w = t.w;
  const std::int64_t p = c.rows, k = c.cols;
  Matrix ew = e;  // E_mn w_n, the first product of each term of the sum over n
  for (std::int64_t m = 0; m < p; ++m)
    for (std::int64_t n = 0; n < p; ++n) ew(m, n) *= w[n];
  const Matrix s = matmul(ew, c);  // Σ_n E_mn w_n c_nj, summed over n in order
  Matrix dc = zeros(p, k);
  for (std::int64_t m = 0; m < p; ++m) {
    double q = 0;
    for (std::int64_t n = 0; n < p; ++n) q += e(m, n) * e(m, n) * w[n];
    for (std::int64_t j = 0; j < k; ++j) dc(m, j) = -2 * w[m] * s(m, j) + 2 * w[m] * w[m] * c(m, j) * q;
  }
  return matmul(x, dc, true, false);
}

// Mean |cosine| between distinct rows of y (the reference's (Σ|C0| − P) / (P(P−1))).
double mean_abs_cosine(const Matrix& y) {
  const std::int64_t p = y.rows;
  std::vector<double> norm(static_cast<std::size_t>(p), 0.0);
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < y.cols; ++j) norm[i] += y(i, j) * y(i, j);
  double s = 0;
  for (std::int64_t a = 0; a < p; ++a)
    for (std::int64_t b = 0; b < p; ++b) {
      if (a == b) continue;
      double d = 0;
      for (std::int64_t j = 0; j < y.cols; ++j) d += y(a, j) * y(b, j);
      const double denom = std::sqrt(norm[a] * norm[b]);
      s += denom > 0 ? std::abs(d) / denom : 0;
    }
  return s / static_cast<double>(p * (p - 1));
}

}  // namespace

// pymanopt's ConjugateGradient as the reference runs it (every setting its default): the
// Hestenes–Stiefel β clipped at 0, vector transport by projection, and pymanopt's backtracking
// line search: the first trial twice the step that would repeat the last decrease (the first
// search: a step of length 1), halved up to 25 times until Armijo's condition (1e-4) holds, and a
// trial worse than the start refused (no step). The stopping tests are pymanopt's, in its order,
// at the top of each iteration: 1000 iterations (counted as it counts them: at most 999 line
// searches), a gradient norm below 1e-6, a last step shorter than 1e-10.
CenterFit minimize_center_cost(const Matrix& x, const Matrix& v0) {
  const Matrix cc = matmul(x, x, false, true);  // X Xᵀ: the same at every evaluation
  CenterFit fit;
  fit.v = v0;
  CostTerms terms = cost_terms(x, cc, fit.v);
  fit.cost = terms.f;
  Matrix grad = tangent(fit.v, cost_gradient(x, terms)), dir = grad;
  for (double& d : dir.v) d = -d;
  fit.gradient_norm = std::sqrt(dot(grad, grad));
  // Where a center lies (almost) inside span(V), its residual vanishes and the gradient of its
  // cosines is not finite: the search stops at the last point whose gradient was.
  if (!std::isfinite(fit.gradient_norm)) {
    fit.stop = CgStop::non_finite;
    return fit;
  }
  double f_before_last_search = NAN;
  for (;; ++fit.iterations) {
    if (fit.iterations + 1 >= 1000) {
      fit.stop = CgStop::iterations;
      break;
    }
    if (fit.gradient_norm < 1e-6) {
      fit.stop = CgStop::gradient_norm;
      break;
    }
    if (fit.last_step < 1e-10) {  // false while no search has run (NaN)
      fit.stop = CgStop::step_size;
      break;
    }
    double slope = dot(grad, dir);
    if (slope >= 0) {  // not a descent direction: restart along the negative gradient
      dir = grad;
      for (double& d : dir.v) d = -d;
      slope = -fit.gradient_norm * fit.gradient_norm;
    }
    const double dir_norm = std::sqrt(dot(dir, dir));
    double step = 4 * (fit.cost - f_before_last_search) / slope;
    if (!(step > 0 && std::isfinite(step))) step = 1 / dir_norm;  // the first search
    Matrix trial;
    for (int halvings = 0;; ++halvings, step *= 0.5) {
      trial = retract(axpy(fit.v, step, dir));
      terms = cost_terms(x, cc, trial);
      if (!(terms.f > fit.cost + 1e-4 * step * slope) || halvings == 25) break;
    }
    f_before_last_search = fit.cost;
    if (terms.f > fit.cost) {  // refused: no step, and the next test stops the search
      fit.last_step = 0;
      dir = grad;
      for (double& d : dir.v) d = -d;
      continue;
    }
    Matrix grad_new = tangent(trial, cost_gradient(x, terms));
    const double gradient_norm = std::sqrt(dot(grad_new, grad_new));
    if (!std::isfinite(terms.f) || !std::isfinite(gradient_norm)) {
      fit.stop = CgStop::non_finite;
      break;
    }
    // Hestenes–Stiefel, with both the old gradient and the direction transported to the new point.
    // Where its denominator vanishes (pymanopt would divide by zero), the direction restarts.
    const Matrix dir_transported = tangent(trial, dir), change = axpy(grad_new, -1.0, tangent(trial, grad));
    const double denominator = dot(change, dir_transported);
    const double beta = denominator != 0 ? std::max(0.0, dot(grad_new, change) / denominator) : 0.0;
    for (std::size_t i = 0; i < dir.v.size(); ++i) dir.v[i] = -grad_new.v[i] + beta * dir_transported.v[i];
    fit.v = std::move(trial);
    fit.cost = terms.f;
    fit.last_step = step * dir_norm;
    fit.gradient_norm = gradient_norm;
    grad = std::move(grad_new);
  }
  return fit;
}

double center_cost(const Matrix& x, const Matrix& v, Matrix* grad) {
  return center_cost_given_gram(x, matmul(x, x, false, true), v, grad);
}

double center_cost_given_gram(const Matrix& x, const Matrix& cc, const Matrix& v, Matrix* grad) {
  const CostTerms t = cost_terms(x, cc, v);
  if (grad) *grad = cost_gradient(x, t);
  return t.f;
}

// At most rank − 1 directions, so that the residuals keep two dimensions for their cosines to mean
// anything: P − 2 for centers in general position, fewer for centers in a smaller span (a layer
// with few live units). With rank 1 or less there is no structure to remove.
std::int64_t max_center_k(std::int64_t centers, std::int64_t rank) { return std::min(centers - 2, rank - 1); }

CenterStructure find_center_structure(const Matrix& centers, std::uint64_t seed, std::int64_t fixed_k, int restarts) {
  const std::int64_t p = centers.rows, n = centers.cols;
  GS_CHECK(p >= 3, "center structure: needs at least 3 centers, got {}", p);
  GS_CHECK(fixed_k >= 0, "center structure: K must be 0 (the K of least residual correlation) or at least 1, got {}", fixed_k);
  // Centers minus their mean, in the (P − 1)-dimensional basis q of their span.
  Matrix xb = centers;
  for (std::int64_t j = 0; j < n; ++j) {
    double mean = 0;
    for (std::int64_t i = 0; i < p; ++i) mean += centers(i, j) / static_cast<double>(p);
    for (std::int64_t i = 0; i < p; ++i) xb(i, j) -= mean;
  }
  GS_CHECK(n >= p - 1, "center structure: {} centers span at most {} dimensions, but the space has {}", p, p - 1, n);
  // Centers that all coincide (a layer whose units have all died) have no structure to find and
  // no correlation: none is removed (K = 0), and the correlation is NaN. The structure does not
  // change with the centers' scale, so they are scaled by a power of two (exactly, so that
  // ordinary centers give the same bits) to a largest entry in [½, 1): tiny activations (a
  // network initialized at 1e-30) would otherwise underflow in the squares below.
  double largest = 0, largest_center = 0;
  for (double v : xb.v) largest = std::max(largest, std::fabs(v));
  for (double v : centers.v) largest_center = std::max(largest_center, std::fabs(v));
  if (!(largest > 1e-12 * largest_center)) {  // all alike to rounding, or all zero
    CenterStructure none;
    none.correlation_before = std::nan("");
    return none;
  }
  int exponent = 0;
  std::frexp(largest, &exponent);
  for (double& v : xb.v) v = std::ldexp(v, -exponent);
  Matrix xbt = zeros(n, p);
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < n; ++j) xbt(j, i) = xb(i, j);
  Matrix q = orthonormalize(xbt);  // N × P
  Matrix q1 = zeros(n, p - 1);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < p - 1; ++j) q1(i, j) = q(i, j);
  Matrix x = matmul(xb, q1);  // P × (P − 1)

  CenterStructure out;
  out.correlation_before = mean_abs_cosine(x);
  // maxK: the components below 95% cumulative variance, plus 10, at most P − 2.
  std::vector<double> sv(static_cast<std::size_t>(std::min(p, n))), work = xb.v;
  std::vector<double> superb(static_cast<std::size_t>(std::min(p, n)));
  GS_CHECK(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', static_cast<int>(p), static_cast<int>(n), work.data(), static_cast<int>(n),
                          sv.data(), nullptr, 1, nullptr, 1, superb.data()) == 0,
           "center structure: SVD failed");
  double total = 0, run = 0;
  for (double s : sv) total += s * s;
  std::int64_t below = 0;
  for (std::size_t i = 0; i < sv.size(); ++i) {
    run += sv[i] * sv[i];
    if (run / total < 0.95) below = static_cast<std::int64_t>(i);
  }
  std::int64_t rank = 0;
  for (double v : sv) rank += v > 1e-10 * sv[0] ? 1 : 0;
  // The reference searches up to its bound; a fixed K goes as far as the centers allow.
  const std::int64_t max_k = std::min(fixed_k > 0 ? fixed_k : below + 11, max_center_k(p, rank));
  if (max_k < 1) return out;  // K = 0

  Generator gen(seed, static_cast<std::uint64_t>(77));
  std::vector<Matrix> solutions;
  Matrix v1;
  for (std::int64_t k = 1; k <= max_k; ++k) {
    // Restarts run in parallel from starts drawn in order: the result does not depend on threads.
    std::vector<std::vector<double>> starts;
    for (int r = 0; r < restarts; ++r) {
      Tensor s = Tensor::empty(Shape{p}, DType::f64);
      gen.normal(s, 0, 1);
      starts.push_back(s.to_vector());
    }
    std::vector<Matrix> found(static_cast<std::size_t>(restarts));
    std::vector<double> stabilities(static_cast<std::size_t>(restarts));
    kernels::cpu::RegionErrors errors;
#pragma omp parallel for schedule(dynamic)
    for (int r = 0; r < restarts; ++r) errors.guard([&] {
      const auto& sv2 = starts[static_cast<std::size_t>(r)];
      Matrix v0 = zeros(p - 1, k);  // columns: Xᵀs, then the previous solution's
      for (std::int64_t j = 0; j < p - 1; ++j) {
        double acc = 0;
        for (std::int64_t i = 0; i < p; ++i) acc += sv2[static_cast<std::size_t>(i)] * x(i, j);
        v0(j, 0) = acc;
        for (std::int64_t c = 1; c < k; ++c) v0(j, c) = v1(j, c - 1);
      }
      Matrix v = minimize_center_cost(x, retract(v0)).v;
      // Stability: the smallest fraction of a center's norm left after removing span(V).
      Matrix xv = matmul(x, v), left = axpy(x, -1.0, matmul(xv, v, false, true));
      double stability = INFINITY;
      for (std::int64_t i = 0; i < p; ++i) {
        double a = 0, b = 0;
        for (std::int64_t j = 0; j < p - 1; ++j) {
          a += left(i, j) * left(i, j);
          b += x(i, j) * x(i, j);
        }
        stability = std::min(stability, std::sqrt(a / b));
      }
      found[static_cast<std::size_t>(r)] = v;
      stabilities[static_cast<std::size_t>(r)] = stability;
    });
    errors.rethrow();
    double best_stability = -1;
    Matrix best;
    for (int r = 0; r < restarts; ++r)
      if (stabilities[static_cast<std::size_t>(r)] > best_stability) {
        best_stability = stabilities[static_cast<std::size_t>(r)];
        best = found[static_cast<std::size_t>(r)];
      }
    v1 = best;
    Matrix left = axpy(x, -1.0, matmul(matmul(x, v1), v1, false, true));
    out.residual.push_back(mean_abs_cosine(left));
    solutions.push_back(v1);
    const auto& res = out.residual;
    const std::size_t i = res.size();
    if (fixed_k == 0 && i > 4 && res[i - 1] > res[i - 2] && res[i - 2] > res[i - 3] && res[i - 3] > res[i - 4])
      break;  // three rises
  }
  if (fixed_k > 0) {
    out.k = max_k;
    out.basis = matmul(q1, solutions.back());
    return out;
  }
  const auto best = std::min_element(out.residual.begin(), out.residual.end());
  out.k = static_cast<std::int64_t>(best - out.residual.begin()) + 1;
  for (std::size_t i = 0; i < out.residual.size(); ++i)
    if (static_cast<std::int64_t>(i) + 1 != out.k && out.residual[i] - *best < 1e-3) out.near_ties.push_back(static_cast<std::int64_t>(i) + 1);
  out.basis = matmul(q1, solutions[static_cast<std::size_t>(out.k - 1)]);  // N × k
  return out;
}

}  // namespace gs::probe
