#pragma once
// The CUDA backend: hand-written kernels for every family, one .cu per family, all on one
// stream (stream() below), which graph.cu can capture. Reductions run in a fixed order with no
// floating-point atomics, so a result does not change from run to run. Scalars the ops read
// back (count_equal) and copies to and from the host are synchronous.
#include <string>
#include <utility>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_check.h"

namespace gs::kernels::cuda {

constexpr int threads_per_block = 256;
inline int blocks_for(i64 n) { return static_cast<int>((n + threads_per_block - 1) / threads_per_block); }

// Calls f.template operator()<T>() with T the C++ type of a floating dtype.
template <class F>
void with_float(DType dtype, const char* entry_point, F&& f) {
  if (dtype == DType::f32) return f.template operator()<float>();
  if (dtype == DType::f64) return f.template operator()<double>();
  throw Error(std::string(entry_point) + " works on f32 or f64 tensors, got " + dtype_name(dtype));
}

// The one stream all of the backend's work goes to, so that it can be captured as a graph (the
// legacy default stream cannot be). It is a blocking stream: work on the legacy stream, where
// synchronous copies and the vendor libraries of the benchmarks run, still orders with it.
cudaStream_t stream();

// The first statement of every kernel: waits until the kernels before it on the stream have
// finished and their writes are visible, then lets the kernel after it begin launching. With
// overlapped launches (kernels/graph.h) a kernel may start before its predecessor ends, so
// nothing it reads or writes may come before this call: tests/test_cuda_emulator.cpp checks that
// every kernel in kernels/cuda begins with it, and the emulator that every thread of an overlapped
// launch calls it before its first barrier. Launched the plain way, both instructions do nothing.
__device__ __forceinline__ void begin_after_preceding_kernels() {
#ifdef GROKSCOPE_CUDA_EMULATED
  cuda_emulator::waited_for_preceding_kernels();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Every launch goes through here, so that a launch is spelled in one place only: the CPU
// emulation of this backend (kernels/cuda/emulator/) runs the very same kernels through it.
// Arguments convert to the kernel's parameter types first, as a <<<>>> launch does; a failed
// launch is an error naming the kernel and its element count.
template <class... Params, class... Args>
void launch(const char* what, i64 n, dim3 grid, dim3 block, void (*kernel)(Params...), Args&&... args) {
  const bool overlapped = overlapped_launches();
#ifdef GROKSCOPE_CUDA_EMULATED
  int index = 0;
  if (cuda_emulator::recording_launches()) {
    std::string described;
    (cuda_emulator::describe_argument(described, static_cast<Params>(args)), ...);
    cuda_emulator::note_launch(what, std::move(described));
  }
  if ((cuda_emulator::argument_ok(what, index++, static_cast<Params>(args)) && ...)) {
    std::vector<const void*> pointers;
    (cuda_emulator::note_pointer(pointers, static_cast<Params>(args)), ...);
    cuda_emulator::launch(what, grid, block, stream(),
                          [kernel, ... a = static_cast<Params>(std::forward<Args>(args))] { kernel(a...); },
                          std::move(pointers), overlapped);
  }
#else
  // The launch calls take the addresses of the converted arguments, in the kernel's order.
  [&](Params... converted) {
    void* slots[] = {static_cast<void*>(&converted)...};
    if (overlapped) {
      cudaLaunchAttribute attribute{};
      attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attribute.val.programmaticStreamSerializationAllowed = 1;
      cudaLaunchConfig_t config{};
      config.gridDim = grid;
      config.blockDim = block;
      config.stream = stream();
      config.attrs = &attribute;
      config.numAttrs = 1;
      GS_CUDA_CHECK(cudaLaunchKernelExC(&config, reinterpret_cast<const void*>(kernel), slots),
                    std::string("overlapped launch of ") + what + ", n = " + std::to_string(n));
    } else {
      GS_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, block, slots, 0, stream()),
                    std::string("launch of ") + what + ", n = " + std::to_string(n));
    }
  }(static_cast<Params>(std::forward<Args>(args))...);
#endif
  GS_CUDA_LAUNCH_CHECK(what, n);
}

class CudaBackend final : public Backend {
 public:
#ifdef GROKSCOPE_CUDA_EMULATED
  const char* name() const override { return "cuda (emulated on the CPU)"; }
#else
  const char* name() const override { return "cuda"; }
#endif

  void* allocate(std::size_t bytes) override;
  void release(void* ptr) override;
  void poison(void* ptr, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void* allocate_host(std::size_t bytes) override;
  void release_host(void* ptr) override;
  void copy_from_host_queued(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host_queued(void* host_dst, const void* src, std::size_t bytes) override;
  void synchronize() override;
  void fill(DType dtype, i64 n, double value, void* y) override;
  void convert(DType from, DType to, i64 n, const void* x, void* y) override;
  void gather_rows(DType dtype, i64 rows, i64 row_elements, i64 source_rows, const void* x, const std::int32_t* indices,
                   void* y) override;

  void gemm(DType dtype, const GemmShape& s, double alpha, const void* a, const void* b, double beta,
            void* c) override;
  void gemm_bias_act(DType dtype, const GemmShape& s, const void* a, const void* b, const void* bias,
                     std::optional<Unary> act, void* c) override;
  void dense_backward(DType dtype, const DenseShape& s, std::optional<Unary> act, const void* x, const void* w,
                      const void* y, const void* g, void* gz_scratch, void* gx, void* gw, void* gb) override;

  void unary(Unary op, DType dtype, i64 n, const void* x, void* y) override;
  void unary_backward(Unary op, DType dtype, i64 n, const void* x, const void* y, const void* gy,
                      void* gx) override;
  void binary(Binary op, DType dtype, const Broadcast& b, const void* x, const void* y, void* out) override;
  void reduce_to_operand(DType dtype, const Broadcast& b, const std::array<i64, 4>& operand_stride,
                         i64 operand_numel, double scale, const void* g_out,
                         const std::array<i64, 4>& other_stride, const void* other, void* g_operand) override;
  void axpby(DType dtype, i64 n, double alpha, const void* x, double beta, void* y) override;
  void broadcast_rows(DType dtype, i64 rows, i64 cols, const void* row, void* y) override;
  void sum_rows(DType dtype, i64 rows, i64 cols, const void* x, void* y) override;
  void sum(DType dtype, i64 n, const void* x, void* y) override;

  void log_softmax(DType dtype, i64 rows, i64 cols, const void* x, void* y) override;
  void log_softmax_backward(DType dtype, i64 rows, i64 cols, const void* y, const void* gy, void* gx) override;
  void cross_entropy(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* logp, void* out,
                     void* one, void* grad) override;
  void one_hot(DType dtype, i64 rows, i64 classes, const std::int32_t* labels, void* y) override;
  void nll_backward(DType dtype, i64 rows, i64 cols, const std::int32_t* labels, const void* g_out,
                    void* g_logp) override;
  void mse(DType dtype, i64 n, const void* a, const void* b, void* out, void* one) override;
  void mse_backward(DType dtype, i64 n, const void* a, const void* b, const void* g_out, void* ga) override;
  void mse_one_hot(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* out,
                   void* one, void* grad) override;
  void mse_one_hot_backward(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, const void* g_out,
                            void* gx) override;
  void argmax_rows(DType dtype, i64 rows, i64 cols, const void* x, std::int32_t* out) override;
  i64 count_equal(i64 n, const std::int32_t* a, const std::int32_t* b) override;

  bool conv2d_keeps_patches() const override { return false; }
  void conv2d_forward(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x, const void* w,
                      void* y, void* patches) override;
  void conv2d_backward_data(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* gy,
                            const void* w, void* gx) override;
  void conv2d_backward_weight(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                              const void* gy, const void* patches, void* gw) override;
  void im2col(DType dtype, const ConvGeometry& g, const void* image, void* col) override;
  void col2im(DType dtype, const ConvGeometry& g, const void* col, void* image) override;
  void max_pool2d(DType dtype, const PoolGeometry& g, const void* x, void* y, std::int32_t* argmax) override;
  void max_pool2d_backward(DType dtype, const PoolGeometry& g, const void* gy, const std::int32_t* argmax,
                           void* gx) override;

  void sgd_step(DType dtype, i64 n, void* param, const void* grad, void* momentum_buffer, const SgdStep& s) override;
  void adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s, AdamCounters* counters,
                  bool count_step) override;

  void add_gram_weighted(DType dtype, const KernelTile& tile, const void* t, const void* g, i64 ldg, void* k,
                         bool accumulate) override;
  void add_output_block(DType dtype, const KernelTile& tile, double alpha2, const void* g, i64 ldg, void* k) override;
  void dot_f64(DType dtype, i64 n, const void* x, const void* y, double* out) override;

  void layer_centers(const LayerClasses& layer, double* mean, double* centers) override;
  void manifold_points(const LayerClasses& layer, const double* mean, const double* basis, i64 k, double* work,
                       double* norms) override;
  void span_coordinates(const std::vector<SpanProblem>& manifolds) override;
  void solve_anchors(const std::vector<AnchorProblem>& manifolds, double tolerance) override;
  void anchor_terms(const AnchorProblem& p, const double* sz, const double* gz, double* anchors, double* terms) override;

  bool begin_capture(std::string& why_not) override;
  CapturedWork* end_capture(std::string& why_not) override;
  void replay(CapturedWork* work) override;
  void destroy(CapturedWork* work) override;
  i64 recorded_operations(const CapturedWork* work) const override;

  CudaBackend();
  // Whether a GEMM launch whose output is m × n gets the large tiles (gemm.cu); bench_cuda's
  // table marks the tiling each shape gets.
  bool large_gemm_tiles(i64 m, i64 n) const;
  // How many depth slices a dense layer's forward of `tiles` tiles, `slabs` slabs deep, is cut into.
  i64 gemm_splits(i64 tiles, i64 slabs, std::size_t partial_bytes) const;

 private:
  int multiprocessors_ = 0;  // read once here: a device query must not run inside a graph capture
};

// Where products split along their depth (split-K: the convolutions' weight gradient, a dense
// layer's deep forward) keep their partial sums until a second kernel adds them in split order:
// one buffer for the process, allocated at the first split (an eager step: a graph is captured
// only after one), never resized, so that a captured graph's pointer into it stays valid. Its
// users run one after the other on the backend's stream, each summing before the next writes.
constexpr std::size_t split_scratch_bytes = std::size_t(16) << 20;
void* split_scratch();
// The length of each slice when a depth is cut into `splits` slices of whole slabs (the last may
// be shorter); the slice count is then (depth + chunk − 1) / chunk, which can be below `splits`.
inline i64 split_chunk(i64 depth, i64 splits, i64 slab) { return ((depth + splits - 1) / splits + slab - 1) / slab * slab; }

// Σ of n doubles on the device into *out (device), in a fixed order: per-block trees over
// contiguous chunks, then one block over the partial sums (kernels/cuda/reduce.cuh); at most
// this many blocks, whose partials live in sum_scratch().
constexpr int max_sum_blocks = 1024;

}  // namespace gs::kernels::cuda
