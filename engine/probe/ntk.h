#pragma once
// The empirical neural tangent kernel of a network on a probe set, and the distances between
// kernels that tell how far training has moved it.
//
// Rows are (sample i, logit a) in sample-major order, and
//   K[(i,a),(j,b)] = ⟨∂f_a(x_i)/∂θ, ∂f_b(x_j)/∂θ⟩   over every weight and bias.
// For a dense layer z = W h + b the parameter gradient of logit a at sample i is d_(i,a) h_iᵀ
// (and d_(i,a) for b), with d_(i,a) = ∂f_a(x_i)/∂z the backprop signal, so its share of K is
//   K_l = (D Dᵀ) ⊙ ((H Hᵀ + 1) ⊗ 1_C 1_Cᵀ),
// computed from the signals D [nC, out] and inputs H [n, in] without materializing J. The signals
// of all n·C one-hot cotangents are backpropagated at once, as one batched pass. A convolution's
// rows are its per-(sample, logit) weight gradients D_(i,a) P_iᵀ, from the signals and im2col.
#include <string>
#include <vector>

#include "engine/nn/layers.h"
#include "engine/probe/kernel_metrics.h"

namespace gs::probe {

// One layer's share of K in factored form. Dense layers: K_l = (D Dᵀ) ⊙ ((H Hᵀ + 1) ⊗ 1 1ᵀ).
// Convolutions (plain_gram): `signals` holds each row's whole parameter gradient G (weight and
// bias, n·C × Co·(Ci·kh·kw + 1)) and K_l = G Gᵀ.
struct LayerFactors {
  std::string name;  // the layer's parameter prefix, "layers.3"
  Tensor signals;    // D [n·C, out] (rows (i, a)), or G for a convolution
  Tensor inputs;     // H [n, in]; undefined for a convolution
  bool output_layer = false;  // its signals are α·δ_ab (α the output scale): K_l = α² δ_ab (H Hᵀ + 1)
  double output_scale = 1.0;
  bool plain_gram = false;
};

// Forward on x [n, ...] and the batched one-hot backward through a Sequential of Linear, Conv2d,
// MaxPool2d, activations, Flatten and Scale. Raises naming the layer for anything else.
std::vector<LayerFactors> jacobian_factors(nn::Sequential& net, const Tensor& x);

struct NtkOptions {
  bool per_layer = false;          // also keep every layer's [n·C, n·C] kernel (tests, analysis)
  std::int64_t tile_samples = 64;  // K is assembled in tiles of this many samples squared (bench_ntk)
};

struct Ntk {
  std::int64_t samples = 0, classes = 0;
  Tensor kernel;  // [n·C, n·C], the sum over layers, in the network's dtype
  std::vector<std::string> layer_names;
  std::vector<double> layer_traces;  // trace(K_l): each layer's share is trace(K_l) / trace(K)
  Tensor output_gram;  // f64 [n, n]: the output layer's block is output_gram ⊗ I_C
  std::vector<Tensor> per_layer;  // only with NtkOptions::per_layer
};

// The per-logit kernel from the factored layer blocks, on the cpu. Refuses up front when the
// kernel would not fit in memory, saying how many bytes it needs and how many are free.
Ntk empirical_ntk(nn::Sequential& net, const Tensor& x, const NtkOptions& options = {});
// Free physical memory now (0 where the system does not say): the probes size themselves by it.
std::size_t available_memory_bytes();

// The same kernel by brute force: J row by row through the tape, then J Jᵀ. For tests and tiny nets.
Tensor brute_force_ntk(nn::Sequential& net, const Tensor& x);
// J [n·C, P]: row (i, a) is ∂f_a(x_i)/∂θ over the parameters in named_parameters() order.
Tensor brute_force_jacobian(nn::Sequential& net, const Tensor& x);

}  // namespace gs::probe
