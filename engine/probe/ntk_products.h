#pragma once
// The sums of a streamed comparison from per-sample products of the factors, without kernel
// tiles. For dense layers K_A = Σ_l (D_l D_lᵀ) ⊙ (G_l ⊗ 1 1ᵀ) (engine/probe/ntk.h), so
//   ⟨K_A, K_B⟩ = Σ_{l,m} Σ_{i,j} G_l[i,j] G'_m[i,j] ⟨M_lm(i), M_lm(j)⟩,   M_lm(i) = D_l(i)ᵀ E_m(i),
// with D_l(i) the C × w_l block of sample i's signals in A and E_m(i) that of layer m in B:
// n² Σ_{l,m} w_l w_m multiply-adds a sum, where the tiles take n² C² Σ_l w_l per kernel built.
// That is fewer when C² is large next to the widths: EMNIST's MLP (C = 47; widths 128, 512, 128
// and its 47 logits) needs 2.2× fewer for a probe step with two references.
//
// On the CPU only (one small GEMM per sample), for networks of dense layers. The Gram entries
// ⟨M_lm(i), M_lm(j)⟩ are f32 (or f64) GEMM sums over at most 16384 products; each chunk's
// weighted sum over i, j is f64, in a fixed order. In f32 a distance is then accurate to a few
// 1e-12 (bench_ntk's EMNIST probe step against f64: 3e-12 at 1.4e-4), where the f32 tiles reach
// 1e-15: the tiles compute ‖K‖² and ⟨K, R⟩ from the same rounded entries of K, so that their
// rounding cancels in 1 − cos; the products form each sum from products of its own.
#include "engine/probe/ntk_stream.h"

namespace gs::probe::products {

// Whether the products apply (cpu factors, dense layers only) and take fewer multiply-adds than
// the tiles for a comparison of one kernel with `references` others (each reference's norm
// included).
bool cheaper(const KernelFactors& f, std::size_t references);

// How the work is cut: rows of M_lm(i) per chunk so that a Gram entry sums at most chunk_depth
// products before its f64 flush, and rows of the n × n Gram per GEMM (each GEMM computes its
// band right of the diagonal, so wider bands compute more of the lower half, narrower ones
// repack more of x: 128 and 320 took the same time at EMNIST size). Tests make both small.
struct Blocking {
  std::int64_t chunk_depth = 16384, band_rows = 320;
};

// ⟨K_A, K_B⟩ for factors of the same points on the cpu. With &a == &b, ‖K_A‖², each pair of
// layers once (M_ml(i) = M_lm(i)ᵀ).
double inner(const KernelFactors& a, const KernelFactors& b, const Blocking& blocking = {});

}  // namespace gs::probe::products
