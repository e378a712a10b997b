#pragma once
// Kernels too large to hold (EMNIST's 1280 points × 47 logits: 14.5 GB in f32) compared without
// ever materializing them: both kernels are rebuilt tile by tile from their factors, and only
// the sums ⟨A,A⟩, ⟨B,B⟩, ⟨A,B⟩ are kept. Memory: the factors plus two tiles per thread.
#include <limits>

#include "engine/probe/ntk.h"

namespace gs::probe {

struct KernelFactors {
  std::vector<LayerFactors> layers;
  // Per layer, a dense layer's input Gram H Hᵀ + 1 [n, n] (undefined for a convolution), in the
  // factors' dtype and on their device: computed once with the factors, read by every tile, the
  // trace kernels and the alignment's numerator.
  std::vector<Tensor> input_grams;
  std::int64_t samples = 0, classes = 0;
  // ‖K‖² where a caller has kept it from an earlier comparison (NaN until then). Where the sums
  // come from per-sample products, a norm costs as much as a comparison, and compare_streamed
  // takes a reference's from here instead of recomputing it.
  double norm2 = std::numeric_limits<double>::quiet_NaN();
  Device device() const { return layers.front().signals.device(); }
  KernelFactors to(Device device) const;  // a copy whose tensors live on `device`
};
// On the device of the network and x.
KernelFactors kernel_factors(nn::Sequential& net, const Tensor& x);

struct StreamedComparison {
  double norm2_a = 0, norm2_b = 0, inner = 0;  // f64 sums over every entry
  // 1 − ⟨A,B⟩ / (‖A‖ ‖B‖); the sums are f64 over f32 products, accurate to ~1e-12 absolute.
  double distance() const;
};

// The output layer's block is output_gram ⊗ I_C: α² (H Hᵀ + 1), f64 [n, n].
Tensor output_gram(const KernelFactors& f);

// The samples per side of a streamed comparison's tiles where the caller leaves it (0): on the CPU
// about 768 rows (768 / C samples), so that a thread's three f32 tile buffers stay near its core's
// L2 cache (EMNIST, C = 47: 16 samples, 752 rows, 2.3 MB each; bench_ntk measured 19 s against
// 23 s for 64); on a GPU 64, so that each tile's GEMMs fill the device.
std::int64_t streamed_tile_samples(Device device, std::int64_t classes);

// How the sums are formed: from tiles of the kernels (any network, any device), or from
// per-sample products of the factors (engine/probe/ntk_products.h: dense layers on the CPU);
// by default whichever takes fewer multiply-adds (the products for EMNIST's MLP).
enum class StreamedMethod { cheaper, tiles, sample_products };

// Both factor sets must be for the same points (same n, C and layer shapes) and on one device:
// the tiles are built and summed there (kernels/probe.h), and only the sums come back.
// tile_samples = 0 takes streamed_tile_samples.
StreamedComparison compare_streamed(const KernelFactors& a, const KernelFactors& b, std::int64_t tile_samples = 0,
                                    StreamedMethod method = StreamedMethod::cheaper);

// One kernel against several references in one pass (each tile of the current kernel is built
// once): ‖K‖², and per reference ‖R‖² and ⟨K, R⟩.
struct StreamedSums {
  double norm2 = 0;
  std::vector<double> norm2_ref, inner;
};
StreamedSums compare_streamed(const KernelFactors& current, const std::vector<const KernelFactors*>& refs,
                              std::int64_t tile_samples = 0, StreamedMethod method = StreamedMethod::cheaper);

// Cheap companions, from the factors alone (n × n work, never n·C × n·C), computed where the
// factors are; only n × n matrices and sums come back:
// each layer's block of the trace kernel Σ_a K_l[(i,a),(j,a)], f64 [n, n] on the cpu;
std::vector<Tensor> layer_trace_kernels(const KernelFactors& f);
Tensor add_kernels(const std::vector<Tensor>& kernels);  // their sum in order, f64 on the cpu
Tensor trace_kernel(const KernelFactors& f);             // add_kernels(layer_trace_kernels(f))
// Yᵀ K Y with Y the centred one-hot labels (the numerator of the kernel-target alignment).
double target_quadratic_form(const KernelFactors& f, const Tensor& labels);

}  // namespace gs::probe
