#pragma once
// The common low-rank structure of the class centers, which the reference removes before the
// manifold analysis (neural_manifolds_replicaMFT, fun_FA): for k = 1, 2, ..., an orthonormal
// V (the Stiefel manifold of (P−1) × k frames in the centers' own basis) minimizing
//   F(V) = ½ Σ_mn (C_mn − c_m·c_n)² / (c0_m c0_n),   C = X Xᵀ, c = X V, c0_m = C_mm − ‖c_m‖²,
// the correlations left between the centers X (P × (P−1)) once the span of V is taken out.
// Minimized by pymanopt's Riemannian conjugate gradients with its default settings, as the
// reference runs them (minimize_center_cost), from the reference's warm start [sᵀX; previous V]
// — which the reference itself computes and then drops (its pymanopt call is not given the start
// point).
#include <cmath>
#include <cstdint>
#include <vector>

namespace gs::probe {

// Row-major matrices of doubles.
struct Matrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double& operator()(std::int64_t r, std::int64_t c) { return v[static_cast<std::size_t>(r * cols + c)]; }
  double operator()(std::int64_t r, std::int64_t c) const { return v[static_cast<std::size_t>(r * cols + c)]; }
};

double center_cost(const Matrix& x, const Matrix& v, Matrix* euclidean_gradient = nullptr);
// The same with C = X Xᵀ given, as the minimizer evaluates it many times for one X.
double center_cost_given_gram(const Matrix& x, const Matrix& gram, const Matrix& v, Matrix* euclidean_gradient = nullptr);

// How a minimization of F ended: pymanopt's three tests, or a gradient that stopped being finite.
enum class CgStop { iterations, gradient_norm, step_size, non_finite };
struct CenterFit {
  Matrix v;                   // the frame where it stopped
  double cost = 0;            // F there
  double gradient_norm = 0;   // of the Riemannian gradient there
  double last_step = NAN;     // the last line search's step length; 0 where it refused a trial worse than the start
  int iterations = 0;         // line searches run
  CgStop stop = CgStop::iterations;
};
// F minimized from v0 (a (P−1) × k frame with orthonormal columns) over such frames, x the
// centers in their span's basis (P × (P−1)).
CenterFit minimize_center_cost(const Matrix& x, const Matrix& v0);

struct CenterStructure {
  std::int64_t k = 0;                       // the argmin over k of the residual correlation
  double correlation_before = 0;            // mean |cosine| between distinct centers
  std::vector<double> residual;             // residual correlation for k = 1, 2, ...
  std::vector<std::int64_t> near_ties;      // other k with a residual within 1e-3 of the best
  Matrix basis;                             // N × k orthonormal directions in the original space
};

// How many of the centers' shared directions step 2 removes. The reference takes, at every call,
// the K of least residual correlation; a study following one layer through training may want the
// same K at every step instead, since the capacity, radius and dimension jump whenever K does.
struct CenterRemoval {
  bool remove = true;  // false: nothing is removed (K = 0)
  std::int64_t k = 0;  // 0: the K of least residual correlation; N >= 1: N (or as many as the centers allow)
  static CenterRemoval least_correlation() { return {}; }
  static CenterRemoval none() { return {false, 0}; }
  static CenterRemoval fixed(std::int64_t k) { return {true, k}; }
};

// The most directions find_center_structure can remove from P centers spanning `rank`
// dimensions: P − 2 and rank − 1, so that the residuals keep two dimensions for their cosines.
std::int64_t max_center_k(std::int64_t centers, std::int64_t rank);

// centers: P × N (each row a class center, global mean already subtracted). fixed_k = 0: K is the
// argmin of the residual correlation; fixed_k >= 1: K = min(fixed_k, max_center_k), found by the
// same chain of warm-started minimizations (k = 1, 2, ..., K), and near_ties stays empty.
CenterStructure find_center_structure(const Matrix& centers, std::uint64_t seed, std::int64_t fixed_k = 0,
                                      int restarts = 10);

}  // namespace gs::probe
