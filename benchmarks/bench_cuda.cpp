// The CUDA backend's kernels against the vendor libraries, in one process: grokscope's SGEMM and
// DGEMM against cuBLAS at the study's shapes (GFLOP/s of both tilings and of the one the shape
// gets, its ratio, max error against the float64 reference or, for shapes too large for it,
// against cuBLAS), and the optional TF32 tensor-core kernel against cuBLAS's TF32 mode; the CNN's convolutions (implicit
// GEMM: forward, input and weight gradients) against cuDNN; one training step of the MNIST MLP
// and of the CNN, eager and replayed as one CUDA graph, with plain and with overlapped launches
// (kernels/graph.h); the geometry probe of an EMNIST-sized
// layer with its anchor problems on the GPU against the whole probe on the CPU; and the NTK probe
// of one EMNIST probe set (1280 points) on the GPU. Prints markdown
// tables. cuBLAS and cuDNN are loaded at run time (libcublas.so.13 / .12, libcudnn.so.9), so this
// binary runs where only a Python wheel ships them; without them the baseline columns say so.
// cudnn.h gives the types; nothing is linked.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/synthetic_layer.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/probe/geometry.h"
#include "engine/probe/kernel_metrics.h"
#include "engine/probe/ntk_stream.h"
#include "engine/rng.h"
#include "engine/step_graph.h"
#include "engine/tensor.h"
#include "experiments/step_queue.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/reference/reference.h"
#include "models/models.h"

namespace {

using namespace gs;

// The few cuBLAS entry points used, by their C ABI (cublas_api.h): handles are pointers, the
// operation enum is an int (N = 0, T = 1), and every call returns a status int (0 = success).
// A second handle in CUBLAS_TF32_TENSOR_OP_MATH (3) is the baseline of the TF32 kernels.
struct Cublas {
  using Create = int (*)(void**);
  using SetMathMode = int (*)(void*, int);
  using Sgemm = int (*)(void*, int, int, int, int, int, const float*, const float*, int, const float*, int,
                        const float*, float*, int);
  using Dgemm = int (*)(void*, int, int, int, int, int, const double*, const double*, int, const double*, int,
                        const double*, double*, int);
  void* handle = nullptr;
  void* tf32_handle = nullptr;  // null where this cuBLAS has no TF32 mode
  Sgemm sgemm = nullptr;
  Dgemm dgemm = nullptr;
  std::string origin;

  bool load() {
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
      void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!lib) continue;
      auto create = reinterpret_cast<Create>(dlsym(lib, "cublasCreate_v2"));
      sgemm = reinterpret_cast<Sgemm>(dlsym(lib, "cublasSgemm_v2"));
      dgemm = reinterpret_cast<Dgemm>(dlsym(lib, "cublasDgemm_v2"));
      if (create && sgemm && dgemm && create(&handle) == 0) {
        origin = name;
        auto set_math_mode = reinterpret_cast<SetMathMode>(dlsym(lib, "cublasSetMathMode"));
        if (!set_math_mode || create(&tf32_handle) != 0 || set_math_mode(tf32_handle, 3) != 0) tf32_handle = nullptr;
        return true;
      }
    }
    return false;
  }
  // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
  template <class T>
  void gemm(const kernels::GemmShape& s, const T* a, const T* b, T* c, bool tf32 = false) const {
    const T one = 1, zero = 0;
    const int opa = s.transpose_b ? 1 : 0, opb = s.transpose_a ? 1 : 0;
    int status;
    if constexpr (std::is_same_v<T, float>)
      status = sgemm(tf32 ? tf32_handle : handle, opa, opb, int(s.n), int(s.m), int(s.k), &one, b, int(s.ldb), a, int(s.lda), &zero, c, int(s.ldc));
    else
      status = dgemm(handle, opa, opb, int(s.n), int(s.m), int(s.k), &one, b, int(s.ldb), a, int(s.lda), &zero, c, int(s.ldc));
    if (status != 0) std::fprintf(stderr, "cuBLAS gemm returned status %d\n", status);
  }
};

// The legacy cuDNN convolution API (cudnn_cnn.h), resolved by name.
struct Cudnn {
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnCreateTensorDescriptor) create_tensor = nullptr;
  decltype(&cudnnSetTensor4dDescriptor) set_tensor = nullptr;
  decltype(&cudnnCreateFilterDescriptor) create_filter = nullptr;
  decltype(&cudnnSetFilter4dDescriptor) set_filter = nullptr;
  decltype(&cudnnCreateConvolutionDescriptor) create_conv = nullptr;
  decltype(&cudnnSetConvolution2dDescriptor) set_conv = nullptr;
  decltype(&cudnnSetConvolutionMathType) set_math = nullptr;
  decltype(&cudnnGetConvolutionForwardAlgorithm_v7) pick_algorithm = nullptr;
  decltype(&cudnnGetConvolutionForwardWorkspaceSize) workspace_size = nullptr;
  decltype(&cudnnConvolutionForward) forward = nullptr;
  decltype(&cudnnGetConvolutionBackwardDataAlgorithm_v7) pick_data_algorithm = nullptr;
  decltype(&cudnnGetConvolutionBackwardDataWorkspaceSize) data_workspace_size = nullptr;
  decltype(&cudnnConvolutionBackwardData) backward_data = nullptr;
  decltype(&cudnnGetConvolutionBackwardFilterAlgorithm_v7) pick_filter_algorithm = nullptr;
  decltype(&cudnnGetConvolutionBackwardFilterWorkspaceSize) filter_workspace_size = nullptr;
  decltype(&cudnnConvolutionBackwardFilter) backward_filter = nullptr;
  cudnnHandle_t handle = nullptr;

  template <class F>
  static bool resolve(void* lib, const char* name, F& f) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    return f != nullptr;
  }
  bool load() {
    void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return false;
    const bool ok = resolve(lib, "cudnnCreate", create) && resolve(lib, "cudnnCreateTensorDescriptor", create_tensor) &&
                    resolve(lib, "cudnnSetTensor4dDescriptor", set_tensor) &&
                    resolve(lib, "cudnnCreateFilterDescriptor", create_filter) &&
                    resolve(lib, "cudnnSetFilter4dDescriptor", set_filter) &&
                    resolve(lib, "cudnnCreateConvolutionDescriptor", create_conv) &&
                    resolve(lib, "cudnnSetConvolution2dDescriptor", set_conv) &&
                    resolve(lib, "cudnnSetConvolutionMathType", set_math) &&
                    resolve(lib, "cudnnGetConvolutionForwardAlgorithm_v7", pick_algorithm) &&
                    resolve(lib, "cudnnGetConvolutionForwardWorkspaceSize", workspace_size) &&
                    resolve(lib, "cudnnConvolutionForward", forward) &&
                    resolve(lib, "cudnnGetConvolutionBackwardDataAlgorithm_v7", pick_data_algorithm) &&
                    resolve(lib, "cudnnGetConvolutionBackwardDataWorkspaceSize", data_workspace_size) &&
                    resolve(lib, "cudnnConvolutionBackwardData", backward_data) &&
                    resolve(lib, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", pick_filter_algorithm) &&
                    resolve(lib, "cudnnGetConvolutionBackwardFilterWorkspaceSize", filter_workspace_size) &&
                    resolve(lib, "cudnnConvolutionBackwardFilter", backward_filter);
    return ok && create(&handle) == CUDNN_STATUS_SUCCESS;
  }
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_cuda: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median over 5 batches of the per-call time of f, in seconds, timed with CUDA events.
template <class F>
double median_seconds(F&& f, int calls_per_batch) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 3; ++i) f();  // warm-up
  std::vector<double> t;
  for (int batch = 0; batch < 5; ++batch) {
    check(cudaEventRecord(start), "record");
    for (int i = 0; i < calls_per_batch; ++i) f();
    check(cudaEventRecord(stop), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    t.push_back(ms * 1e-3 / calls_per_batch);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(t.begin(), t.end());
  return t[2];
}

// Wall-clock median over 5 batches of `calls` calls, for work that waits on the host (copies,
// read-backs); the first batch is a warm-up.
template <class F>
double wall_median_seconds(F&& f, int calls) {
  std::vector<double> t;
  for (int batch = 0; batch < 6; ++batch) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f();
    if (batch > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

struct Shape3 {
  const char* what;
  std::int64_t m, n, k;
  bool ta, tb;
};

// A shape's operands, N(0, 1) values drawn in float64 (a, b, on the host) and rounded to the
// benchmarked dtype on the device (ad, bd); its multiply-adds, and calls enough for ~20 GFLOP.
struct GemmOperands {
  kernels::GemmShape s;
  Tensor a, b, ad, bd;
  double flops;
  int calls;
  GemmOperands(const Shape3& sh, DType dt)
      : s{sh.ta, sh.tb, sh.m, sh.n, sh.k, sh.ta ? sh.m : sh.k, sh.tb ? sh.k : sh.n, sh.n},
        a(Tensor::empty(Shape{sh.m * sh.k}, DType::f64)),
        b(Tensor::empty(Shape{sh.k * sh.n}, DType::f64)),
        flops(2.0 * double(sh.m) * double(sh.n) * double(sh.k)),
        calls(std::min(2000, std::max(1, int(2e10 / std::max(flops, 1.0))))) {
    Generator gen(5, Stream::test);
    gen.normal(a, 0, 1);
    gen.normal(b, 0, 1);
    ad = a.to(dt).to(Device::cuda);
    bd = b.to(dt).to(Device::cuda);
  }
};

template <class T>
void bench_gemm(const Cublas* cublas, const Shape3& sh, DType dt) {
  const GemmOperands operands(sh, dt);
  const auto& [s, a, b, ad, bd, flops, calls] = operands;
  Tensor c = Tensor::zeros(Shape{sh.m * sh.n}, dt, Device::cuda), c_ref = Tensor::zeros(Shape{sh.m * sh.n}, dt, Device::cuda);
  auto& be = kernels::backend(Device::cuda);
  // Both tilings, pinned in turn; the ratio is that of the one the shape gets.
  Tensor c_large = Tensor::zeros(Shape{sh.m * sh.n}, dt, Device::cuda);
  auto timed = [&](kernels::GemmTiling tiling, Tensor& out) {
    kernels::set_gemm_tiling(tiling);
    const double t = median_seconds([&] { be.gemm(dt, s, 1.0, ad.raw(), bd.raw(), 0.0, out.raw()); }, calls);
    kernels::set_gemm_tiling(kernels::GemmTiling::by_shape);
    return t;
  };
  const double small = timed(kernels::GemmTiling::small_tiles, c), large = timed(kernels::GemmTiling::large_tiles, c_large);
  const bool picks_large = dynamic_cast<kernels::cuda::CudaBackend&>(be).large_gemm_tiles(sh.m, sh.n);
  const double ours = picks_large ? large : small;
  double theirs = NAN;
  if (cublas) {
    theirs = median_seconds([&] { cublas->gemm<T>(s, static_cast<const T*>(ad.raw()), static_cast<const T*>(bd.raw()),
                                                  static_cast<T*>(c_ref.raw())); },
                            calls);
  }
  // Max error relative to the largest |reference| entry, of either tiling: against f64 truth
  // where that is cheap.
  auto got = c.to_vector();
  const auto got_large = c_large.to_vector();
  got.insert(got.end(), got_large.begin(), got_large.end());
  std::vector<double> want;
  std::string against = "f64 reference";
  if (flops <= 2e9) {
    want = reference::matmul(a.to(dt).to_vector(), b.to(dt).to_vector(), sh.m, sh.n, sh.k, sh.ta, sh.tb);
  } else if (cublas) {
    want = c_ref.to_vector();
    against = "cuBLAS";
  }
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < got.size() && !want.empty(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i % want.size()]));
    scale = std::max(scale, std::abs(want[i % want.size()]));
  }
  std::printf("| %s %s | %lld×%lld×%lld%s%s | %.1f | %.1f | %s | %.1f | %s | %s | %s |\n", dt == DType::f32 ? "SGEMM" : "DGEMM",
              sh.what, (long long)sh.m, (long long)sh.n, (long long)sh.k, sh.ta ? " Aᵀ" : "", sh.tb ? " Bᵀ" : "",
              flops / small * 1e-9, flops / large * 1e-9, picks_large ? "128" : "64", flops / ours * 1e-9,
              cublas ? std::to_string(flops / theirs * 1e-9).substr(0, 8).c_str() : "n/a",
              cublas ? std::to_string(theirs / ours).substr(0, 5).c_str() : "n/a",
              want.empty() ? "n/a" : (std::to_string(err / std::max(scale, 1e-300)).substr(0, 9) + " vs " + against).c_str());
}

// The TF32 tensor-core kernels (kernels/cuda/tensor_core_tile.cuh), labelled as such, against
// cuBLAS in its TF32 mode: speed, and each one's max error against the float64 product of the
// FP32 operands (or, for shapes too large for it, against our FP32 kernel), to set beside FP32's.
void bench_gemm_tf32(const Cublas* cublas, const Shape3& sh) {
  const GemmOperands operands(sh, DType::f32);
  const auto& [s, a, b, ad, bd, flops, calls] = operands;
  Tensor c = Tensor::zeros(Shape{sh.m * sh.n}, DType::f32, Device::cuda);
  Tensor c_ref = Tensor::zeros(Shape{sh.m * sh.n}, DType::f32, Device::cuda);
  auto& be = kernels::backend(Device::cuda);
  std::vector<double> want;
  std::string against = "f64 reference";
  if (flops <= 2e9) {
    want = reference::matmul(a.to(DType::f32).to_vector(), b.to(DType::f32).to_vector(), sh.m, sh.n, sh.k, sh.ta, sh.tb);
  } else {
    be.gemm(DType::f32, s, 1.0, ad.raw(), bd.raw(), 0.0, c.raw());
    want = c.to_vector();
    against = "our FP32";
  }
  auto relative_error = [&](const Tensor& got_tensor) {
    const auto got = got_tensor.to_vector();
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, std::abs(got[i] - want[i]));
      scale = std::max(scale, std::abs(want[i]));
    }
    return std::to_string(err / std::max(scale, 1e-300)).substr(0, 9);
  };
  kernels::set_gemm_precision(kernels::GemmPrecision::tf32);
  const double ours = median_seconds([&] { be.gemm(DType::f32, s, 1.0, ad.raw(), bd.raw(), 0.0, c.raw()); }, calls);
  kernels::set_gemm_precision(kernels::GemmPrecision::fp32);
  const bool have = cublas && cublas->tf32_handle;
  double theirs = NAN;
  if (have)
    theirs = median_seconds([&] { cublas->gemm<float>(s, static_cast<const float*>(ad.raw()), static_cast<const float*>(bd.raw()),
                                                      static_cast<float*>(c_ref.raw()), true); },
                            calls);
  std::printf("| TF32 tensor cores %s | %lld×%lld×%lld%s%s | %.1f | %s | %s | %s vs %s | %s |\n", sh.what, (long long)sh.m,
              (long long)sh.n, (long long)sh.k, sh.ta ? " Aᵀ" : "", sh.tb ? " Bᵀ" : "", flops / ours * 1e-9,
              have ? std::to_string(flops / theirs * 1e-9).substr(0, 8).c_str() : "n/a",
              have ? std::to_string(theirs / ours).substr(0, 5).c_str() : "n/a", relative_error(c).c_str(), against.c_str(),
              have ? relative_error(c_ref).c_str() : "n/a");
}

// A dense layer's forward (GEMM, bias, ReLU as it stores) split along its depth, as a deep layer
// with few tiles runs, against the same launch unsplit: time per call, both.
void bench_dense_forward() {
  std::printf("\n| dense layer forward, GEMM + bias + ReLU | rows×out×in | split along the depth | unsplit | "
              "ratio (unsplit / split) |\n| --- | --- | ---: | ---: | ---: |\n");
  struct Layer {
    const char* what;
    std::int64_t rows, out, in;
  };
  for (const Layer& l : {Layer{"MLP layer 1, batch 200", 200, 200, 784}, Layer{"EMNIST MLP layer 1, batch 128", 128, 128, 784},
                         Layer{"CNN dense layer, batch 64", 64, 128, 3136}}) {
    Generator gen(9, Stream::test);
    Tensor x = Tensor::empty(Shape{l.rows, l.in}), w = Tensor::empty(Shape{l.out, l.in}), b = Tensor::empty(Shape{l.out});
    gen.normal(x, 0, 1);
    gen.normal(w, 0, 0.05);
    gen.normal(b, 0, 0.1);
    Tensor xd = x.to(Device::cuda), wd = w.to(Device::cuda), bd = b.to(Device::cuda);
    Tensor y = Tensor::empty(Shape{l.rows, l.out}, DType::f32, Device::cuda);
    auto& be = kernels::backend(Device::cuda);
    const kernels::GemmShape s{false, true, l.rows, l.out, l.in, l.in, l.in, l.out};
    auto forward = [&] { be.gemm_bias_act(DType::f32, s, xd.raw(), wd.raw(), bd.raw(), kernels::Unary::relu, y.raw()); };
    const double split = median_seconds(forward, 200);
    kernels::set_gemm_split(kernels::GemmSplit::never);
    const double whole = median_seconds(forward, 200);
    kernels::set_gemm_split(kernels::GemmSplit::by_shape);
    std::printf("| %s | %lld×%lld×%lld | %.1f µs | %.1f µs | %.2f |\n", l.what, (long long)l.rows, (long long)l.out,
                (long long)l.in, split * 1e6, whole * 1e6, whole / split);
  }
}

struct ConvShape {
  const char* what;
  std::int64_t n, c, h, w, co, k, pad;
};

// max |a − b| / max |b| over two device tensors of the same size.
double relative_error(const Tensor& a, const Tensor& b) {
  const auto av = a.to_vector(), bv = b.to_vector();
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    worst = std::max(worst, std::abs(av[i] - bv[i]));
    scale = std::max(scale, std::abs(bv[i]));
  }
  return worst / std::max(scale, 1e-300);
}

// One convolution layer's three passes, no bias: the backend's implicit-GEMM kernels (what
// ops::conv2d and its backward call) against cuDNN's heuristic first choice of algorithm for
// each. All three passes have the forward's multiply-adds. With `tf32`, ours run with TF32 pinned
// (tensor_core_tile.cuh) and cuDNN with tensor-core math allowed, which for FP32 data is TF32.
void bench_conv(const Cudnn* cudnn, const ConvShape& sh, bool tf32 = false) {
  Generator gen(6, Stream::test);
  const std::int64_t oh = sh.h + 2 * sh.pad - sh.k + 1, ow = sh.w + 2 * sh.pad - sh.k + 1;
  Tensor x = Tensor::empty(Shape{sh.n, sh.c, sh.h, sh.w}, DType::f32), w = Tensor::empty(Shape{sh.co, sh.c, sh.k, sh.k}, DType::f32);
  Tensor gy = Tensor::empty(Shape{sh.n, sh.co, oh, ow}, DType::f32);
  gen.normal(x, 0, 1);
  gen.normal(w, 0, 1);
  gen.normal(gy, 0, 1);
  Tensor xd = x.to(Device::cuda), wd = w.to(Device::cuda), gyd = gy.to(Device::cuda);
  Tensor y = Tensor::empty(gy.shape(), DType::f32, Device::cuda), gx = Tensor::empty(x.shape(), DType::f32, Device::cuda);
  Tensor gw = Tensor::empty(w.shape(), DType::f32, Device::cuda);
  auto& be = kernels::backend(Device::cuda);
  const kernels::ConvGeometry g{sh.c, sh.h, sh.w, sh.k, sh.k, 1, sh.pad};
  const double flops = 2.0 * double(sh.n * sh.co * oh * ow) * double(sh.c * sh.k * sh.k);
  struct Pass {
    const char* name;
    double ours, theirs = NAN, err = NAN;
  };
  kernels::ScopedGemmPrecision precision(tf32 ? kernels::GemmPrecision::tf32 : kernels::GemmPrecision::fp32);
  Pass passes[3] = {
      {"forward", median_seconds([&] { be.conv2d_forward(DType::f32, g, sh.n, sh.co, xd.raw(), wd.raw(), y.raw(), nullptr); }, 20)},
      {"input gradient",
       median_seconds([&] { be.conv2d_backward_data(DType::f32, g, sh.n, sh.co, gyd.raw(), wd.raw(), gx.raw()); }, 20)},
      {"weight gradient",
       median_seconds([&] { be.conv2d_backward_weight(DType::f32, g, sh.n, sh.co, xd.raw(), gyd.raw(), nullptr, gw.raw()); }, 20)},
  };
  if (cudnn) {
    cudnnTensorDescriptor_t xdesc, ydesc;
    cudnnFilterDescriptor_t fdesc;
    cudnnConvolutionDescriptor_t cdesc;
    cudnn->create_tensor(&xdesc);
    cudnn->create_tensor(&ydesc);
    cudnn->create_filter(&fdesc);
    cudnn->create_conv(&cdesc);
    cudnn->set_tensor(xdesc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(sh.n), int(sh.c), int(sh.h), int(sh.w));
    cudnn->set_tensor(ydesc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(sh.n), int(sh.co), int(oh), int(ow));
    cudnn->set_filter(fdesc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(sh.co), int(sh.c), int(sh.k), int(sh.k));
    cudnn->set_conv(cdesc, int(sh.pad), int(sh.pad), 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    // FP32 arithmetic, as ours: cuDNN's default math lets FP32 convolutions run in TF32 on tensor cores.
    cudnn->set_math(cdesc, tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH);
    const float one = 1, zero = 0;
    auto workspace_of = [](std::size_t bytes) {
      return Tensor::empty(Shape{std::max<std::int64_t>(1, std::int64_t(bytes / 4 + 1))}, DType::f32, Device::cuda);
    };
    int found = 0;
    {
      cudnnConvolutionFwdAlgoPerf_t perf[8];
      cudnn->pick_algorithm(cudnn->handle, xdesc, fdesc, cdesc, ydesc, 8, &found, perf);
      const auto algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
      std::size_t bytes = 0;
      cudnn->workspace_size(cudnn->handle, xdesc, fdesc, cdesc, ydesc, algo, &bytes);
      Tensor workspace = workspace_of(bytes), ref = Tensor::zeros(y.shape(), DType::f32, Device::cuda);
      passes[0].theirs = median_seconds([&] {
        cudnn->forward(cudnn->handle, &one, xdesc, xd.raw(), fdesc, wd.raw(), cdesc, algo, workspace.raw(), bytes, &zero,
                       ydesc, ref.raw());
      }, 20);
      passes[0].err = relative_error(y, ref);
    }
    {
      cudnnConvolutionBwdDataAlgoPerf_t perf[8];
      cudnn->pick_data_algorithm(cudnn->handle, fdesc, ydesc, cdesc, xdesc, 8, &found, perf);
      const auto algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
      std::size_t bytes = 0;
      cudnn->data_workspace_size(cudnn->handle, fdesc, ydesc, cdesc, xdesc, algo, &bytes);
      Tensor workspace = workspace_of(bytes), ref = Tensor::zeros(x.shape(), DType::f32, Device::cuda);
      passes[1].theirs = median_seconds([&] {
        cudnn->backward_data(cudnn->handle, &one, fdesc, wd.raw(), ydesc, gyd.raw(), cdesc, algo, workspace.raw(), bytes,
                             &zero, xdesc, ref.raw());
      }, 20);
      passes[1].err = relative_error(gx, ref);
    }
    {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[8];
      cudnn->pick_filter_algorithm(cudnn->handle, xdesc, ydesc, cdesc, fdesc, 8, &found, perf);
      const auto algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
      std::size_t bytes = 0;
      cudnn->filter_workspace_size(cudnn->handle, xdesc, ydesc, cdesc, fdesc, algo, &bytes);
      Tensor workspace = workspace_of(bytes), ref = Tensor::zeros(w.shape(), DType::f32, Device::cuda);
      passes[2].theirs = median_seconds([&] {
        cudnn->backward_filter(cudnn->handle, &one, xdesc, xd.raw(), ydesc, gyd.raw(), cdesc, algo, workspace.raw(), bytes,
                               &zero, fdesc, ref.raw());
      }, 20);
      passes[2].err = relative_error(gw, ref);
    }
  }
  for (const Pass& p : passes)
    std::printf("| %sconv %s, %s | %lld×%lld×%lld×%lld, %lld filters %lld×%lld | %.1f | %s | %s | %s |\n",
                tf32 ? "TF32 tensor cores " : "", sh.what, p.name,
                (long long)sh.n, (long long)sh.c, (long long)sh.h, (long long)sh.w, (long long)sh.co, (long long)sh.k,
                (long long)sh.k, flops / p.ours * 1e-9,
                cudnn ? std::to_string(flops / p.theirs * 1e-9).substr(0, 8).c_str() : "n/a",
                cudnn ? std::to_string(p.theirs / p.ours).substr(0, 5).c_str() : "n/a",
                cudnn ? (std::to_string(p.err).substr(0, 9) + " vs cuDNN").c_str() : "n/a");
}

// One AdamW training step of `net` on the GPU, on a fixed random batch (labels i mod 10): what the
// step benchmarks time and the profiler's replay runs.
struct GpuTrainingStep {
  std::shared_ptr<nn::Sequential> net;
  optim::Adam opt;
  bool mse;
  Tensor x, xd, labels;  // the batch on the host and on the device
  Tensor loss;           // after a capture: the graph's loss buffer, which every replay rewrites

  GpuTrainingStep(std::shared_ptr<nn::Sequential> model, const Shape& input, bool mse_loss)
      : net((model->to(Device::cuda), std::move(model))),
        opt(optim::AdamW(net->parameters(), {.lr = 1e-3, .weight_decay = 0.01})),
        mse(mse_loss),
        x(Tensor::empty(input, DType::f32)) {
    Generator data(2, Stream::test);
    data.uniform(x, 0, 1);
    std::vector<std::int32_t> y(static_cast<std::size_t>(input[0]));
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>(i % 10);
    labels = Tensor::from(y, Shape{input[0]}).to(Device::cuda);
    xd = x.to(Device::cuda);
  }
  void operator()() {
    opt.zero_grad();
    Tensor out = net->forward(xd);
    loss = mse ? ops::mse_one_hot_loss(out, labels) : ops::cross_entropy(out, labels);
    loss.backward();
    opt.step();
  }
};

// One AdamW training step, eager (a launch per kernel) and replayed as one CUDA graph.
void bench_training_step(const char* what, std::shared_ptr<nn::Sequential> model, Shape input, bool mse,
                         const char* target) {
  GpuTrainingStep training(std::move(model), input, mse);
  auto& net = training.net;
  auto& opt = training.opt;
  const Tensor &x = training.x, &labels = training.labels;
  Tensor& xd = training.xd;
  Tensor& loss = training.loss;
  const std::int64_t batch = input[0];
  auto step = [&] { training(); };
  step();  // SGD and Adam state exist before a capture; see engine/step_graph.h
  const double eager = median_seconds(step, 200);
  std::printf("\n| training step, %s | time per step | ratio (eager / graph) |\n", what);
  std::printf("| --- | ---: | ---: |\n");
  std::printf("| eager: one launch per kernel | %.1f µs | |\n", eager * 1e6);
  std::string why_not;
  auto graph = StepGraph::capture(Device::cuda, step, why_not);
  if (!graph) {
    std::printf("| one CUDA graph | not captured: %s | |\n", why_not.c_str());
    return;
  }
  const double replayed = median_seconds([&] { graph->replay(); }, 200);
  std::printf("| one CUDA graph of %lld operations, replayed%s | %.1f µs | %.2f |\n",
              static_cast<long long>(graph->operations()), target, replayed * 1e6, eager / replayed);

  // What a run adds to a replayed step, wall clock. A run now queues the upload of the batch's row
  // numbers and the read-back of its loss (experiments/step_queue.h), waiting once per 64 steps;
  // before, it waited for both every step, and before that it uploaded the batch itself.
  std::vector<std::int32_t> rows(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) rows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7) % batch);
  const Tensor rows_host = Tensor::from(rows, Shape{batch});
  Tensor rows_device = rows_host.to(Device::cuda);
  {
    experiments::StepQueue queue(Device::cuda, batch);
    std::int64_t n = 0;
    std::printf("| a run's step: rows up, replayed, loss back, all queued (a wait per 64 steps) | %.1f µs | |\n",
                wall_median_seconds([&] {
                  queue.upload_rows(rows, rows_device);
                  graph->replay();
                  if (queue.queue_loss(loss, ++n)) (void)queue.check();
                }, 640) * 1e6);
    (void)queue.check();
  }
  std::printf("| replayed, then the loss read back (a run's step before) | %.1f µs | |\n",
              wall_median_seconds([&] { graph->replay(); (void)loss.item(); }, 200) * 1e6);
  std::printf("| upload of the batch's %lld row numbers, waited for (a run's step before) | %.1f µs | |\n", static_cast<long long>(batch),
              wall_median_seconds([&] { rows_device.copy_(rows_host); }, 200) * 1e6);
  std::printf("| upload of the batch itself, %.0f KB (a run's step before that) | %.1f µs | |\n", x.numel() * 4 / 1e3,
              wall_median_seconds([&] { xd.copy_(x); }, 200) * 1e6);

  // Where an eager step's time goes: events between its parts, recorded on the legacy stream
  // (which orders itself with the backend's blocking stream), medians of 200 steps.
  constexpr int parts = 4;
  const char* part_names[parts] = {"forward", "loss", "backward", "AdamW"};
  cudaEvent_t marks[parts + 1];
  for (auto& e : marks) check(cudaEventCreate(&e), "event");
  std::vector<double> part_times[parts];
  for (int i = 0; i < 200; ++i) {
    check(cudaEventRecord(marks[0]), "record");
    opt.zero_grad();
    Tensor out = net->forward(xd);
    check(cudaEventRecord(marks[1]), "record");
    Tensor part_loss = mse ? ops::mse_one_hot_loss(out, labels) : ops::cross_entropy(out, labels);
    check(cudaEventRecord(marks[2]), "record");
    part_loss.backward();
    check(cudaEventRecord(marks[3]), "record");
    opt.step();
    check(cudaEventRecord(marks[4]), "record");
    check(cudaEventSynchronize(marks[4]), "sync");
    for (int p = 0; p < parts; ++p) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, marks[p], marks[p + 1]), "elapsed");
      part_times[p].push_back(ms * 1e3);
    }
  }
  for (auto& e : marks) check(cudaEventDestroy(e), "event");
  for (int p = 0; p < parts; ++p) {
    auto& t = part_times[p];
    std::sort(t.begin(), t.end());
    std::printf("| eager, %s only | %.1f µs | |\n", part_names[p], t[t.size() / 2]);
  }

  // The same step with overlapped launches (kernels/graph.h: each kernel may begin launching
  // while the one before it finishes, and waits for it first), eager and as a graph of its own.
  // Last, since a capture rebinds `loss` to its graph's buffer. Ratio: plain over overlapped.
  kernels::set_overlapped_launches(true);
  const double eager_overlapped = median_seconds(step, 200);
  std::string why_not_overlapped;
  auto overlapped_graph = StepGraph::capture(Device::cuda, step, why_not_overlapped);
  kernels::set_overlapped_launches(false);
  std::printf("| eager, overlapped launches (ratio: plain / overlapped) | %.1f µs | %.2f |\n", eager_overlapped * 1e6,
              eager / eager_overlapped);
  if (!overlapped_graph) {
    std::printf("| one CUDA graph of overlapped launches | not captured: %s | |\n", why_not_overlapped.c_str());
    return;
  }
  const double replayed_overlapped = median_seconds([&] { overlapped_graph->replay(); }, 200);
  std::printf("| one CUDA graph of overlapped launches, replayed%s (ratio: plain / overlapped) | %.1f µs | %.2f |\n", target,
              replayed_overlapped * 1e6, replayed / replayed_overlapped);
}

// The geometry probe of one EMNIST-sized layer (47 classes × 200 points, 512 features; Gaussian
// clouds around random centers, n_t = 200, κ = 0) on the GPU against the CPU, wall-clock medians of
// 3, with the parts of the median run. The center structure runs on the host in both.
void bench_geometry_layer() {
  const std::int64_t classes = 47, per_class = 200, features = 512;
  const bench::SyntheticLayer layer = bench::gaussian_clouds(classes, per_class, features);
  const auto& x = layer.x;
  const auto& y = layer.y;
  auto timed = [&](Device device, probe::LayerGeometry& out) {  // the median of 3 runs, and that run's result
    std::vector<std::pair<double, probe::LayerGeometry>> runs;
    for (int i = 0; i < 3; ++i) {
      const auto start = std::chrono::steady_clock::now();
      auto result = probe::analyze_layer(x, features, y, classes, 0.0, 200, 0, {}, device);
      runs.emplace_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), std::move(result));
    }
    std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out = runs[1].second;
    return runs[1].first;
  };
  probe::LayerGeometry on_gpu, on_cpu;
  const double gpu = timed(Device::cuda, on_gpu), cpu = timed(Device::cpu, on_cpu);
  double worst = 0;  // relative difference of the per-class results
  for (std::size_t k = 0; k < on_cpu.per_class.size(); ++k) {
    const auto &a = on_gpu.per_class[k], &b = on_cpu.per_class[k];
    for (auto [u, v] : {std::pair{a.capacity, b.capacity}, std::pair{a.radius, b.radius}, std::pair{a.dimension, b.dimension}})
      worst = std::max(worst, std::abs(u - v) / std::max(std::abs(v), 1e-300));
  }
  std::printf("\n| geometry probe, 47 classes × 200 points, 512 features | time per layer | CPU (%u threads) | ratio (CPU / GPU) | max relative difference |\n",
              std::thread::hardware_concurrency());
  std::printf("| --- | ---: | ---: | ---: | ---: |\n");
  std::printf("| the whole layer on the GPU (target ≤ 0.2 s) | %.1f ms | %.1f ms | %.2f | %.1e |\n", gpu * 1e3, cpu * 1e3,
              cpu / gpu, worst);
  const auto part = [&](const char* what, double probe::LayerGeometry::Seconds::*field) {
    const double g = on_gpu.seconds.*field, c = on_cpu.seconds.*field;
    std::printf("| %s | %.1f ms | %.1f ms | %.2f | |\n", what, g * 1e3, c * 1e3, c / g);
  };
  part("part: upload, class centers", &probe::LayerGeometry::Seconds::centers);
  part("part: center structure (host in both)", &probe::LayerGeometry::Seconds::structure);
  part("part: class manifolds", &probe::LayerGeometry::Seconds::manifolds);
  part("part: span coordinates, Gaussian vectors, anchors", &probe::LayerGeometry::Seconds::anchors);
}

// The NTK probe of one EMNIST probe set on the GPU, the run's streamed path: the study's EMNIST
// MLP (784-128-512-128-47) at 1280 points, the factors of the network now, its streamed comparison
// with two references (the initial and the previous kernel; here the factors of two other
// networks), and the companions (each layer's trace kernel, the output Gram, the alignment's
// numerator). Random weights and inputs: the time depends on the shapes only. Wall clock, each
// part ending when its results are on the host; the median of 3 runs (1 when a run takes > 10 s).
void bench_ntk_probe() {
  const std::int64_t n = 1280;
  const std::vector<std::int64_t> widths{784, 128, 512, 128, 47};
  auto network = [&](std::uint64_t seed) {
    Generator g(seed);
    auto net = models::make_mlp({.widths = widths, .init_scale = 10}, g);
    net->to(Device::cuda);
    return net;
  };
  Generator data(4, Stream::test);
  Tensor x = Tensor::empty(Shape{n, widths.front()}, DType::f32);
  data.uniform(x, 0, 1);
  x = x.to(Device::cuda);
  std::vector<std::int32_t> y;
  for (std::int64_t i = 0; i < n; ++i) y.push_back(static_cast<std::int32_t>(i % widths.back()));
  const Tensor labels = Tensor::from(y, Shape{n});
  auto init = network(11), previous = network(12), now = network(13);
  const auto f0 = probe::kernel_factors(*init, x), f1 = probe::kernel_factors(*previous, x);
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  struct Run {
    double total = 0, factors = 0, comparison = 0, companions = 0, distance = 0;
  };
  std::vector<Run> runs;
  for (int i = 0; i < 3 && (runs.empty() || runs.back().total < 10); ++i) {
    Run r;
    const auto start = clock::now();
    const auto f = probe::kernel_factors(*now, x);
    check(cudaDeviceSynchronize(), "factors");
    r.factors = since(start);
    const auto sums = probe::compare_streamed(f, {&f0, &f1});
    r.comparison = since(start) - r.factors;
    const auto traces = probe::layer_trace_kernels(f);
    const double trace = probe::trace(probe::add_kernels(traces));
    const Tensor output = probe::output_gram(f);
    const double quadratic = probe::target_quadratic_form(f, labels);
    r.total = since(start);
    r.companions = r.total - r.factors - r.comparison;
    r.distance = 1 - sums.inner[0] / std::sqrt(sums.norm2 * sums.norm2_ref[0]);
    if (!std::isfinite(trace + quadratic + output.to_vector()[0])) r.distance = NAN;
    runs.push_back(r);
  }
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.total < b.total; });
  const Run& r = runs[runs.size() / 2];
  std::printf("\n| NTK probe, EMNIST MLP 784-128-512-128-47, %lld points × 47 logits | time (median of %zu) |\n",
              static_cast<long long>(n), runs.size());
  std::printf("| --- | ---: |\n");
  std::printf("| one probe set: factors, distances to 2 kernels, companions (target ≤ 1 s) | %.3f s |\n", r.total);
  std::printf("| part: factors (forward, one-hot backward) | %.3f s |\n", r.factors);
  std::printf("| part: streamed comparison with 2 references (tiles of 64 points) | %.3f s |\n", r.comparison);
  std::printf("| part: companions (trace kernels, output Gram, alignment) | %.3f s |\n", r.companions);
  std::printf("| check: distance to the first reference (finite, in (0, 1)) | %.4f |\n", r.distance);
}

// One table's failure (a refused launch, a missing library) is printed and the next still runs.
template <class F>
void section(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::printf("\n%s: failed: %s\n", what, e.what());
  }
}

// For a profiler (tools/gpu_check.sh runs it under Nsight Compute): the MNIST MLP's training step
// captured as one graph and replayed 3 times, and nothing else, so that the last kernels the
// profiler lists are one replay's. Prints how many operations a replay runs.
void replay_step_for_profiler() {
  Generator gen(1);
  GpuTrainingStep training(models::make_mlp({.widths = {784, 200, 200, 10}, .init_scale = 8}, gen), Shape{200, 784}, true);
  auto step = [&] { training(); };
  step();
  std::string why_not;
  auto graph = StepGraph::capture(Device::cuda, step, why_not);
  if (!graph) {
    std::printf("bench_cuda: the step was not captured: %s\n", why_not.c_str());
    return;
  }
  for (int i = 0; i < 3; ++i) graph->replay();
  check(cudaDeviceSynchronize(), "synchronize");
  std::printf("operations per replay: %lld\n", static_cast<long long>(graph->operations()));
}

}  // namespace

int main(int argc, char** argv) {
  // Line by line even into a file: stopped at gpu_check.sh's limit, it keeps every row printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (argc > 2 || (!mode.empty() && mode != "--replay-step")) {
    std::fprintf(stderr, "usage: bench_cuda [--replay-step]\n  (no argument: every table; --replay-step: only "
                         "3 replays of the MNIST MLP's training step, for a profiler)\n");
    return 2;
  }
  if (!kernels::cuda_available()) {
    std::printf("bench_cuda: no usable CUDA device: %s\n", kernels::cuda_unavailable_reason());
    return 77;
  }
  if (mode == "--replay-step") {
    replay_step_for_profiler();
    return 0;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device properties");
  Cublas cublas;
  const bool have_cublas = cublas.load();
  std::printf("device: %s (sm_%d%d), cuBLAS: %s\n\n", prop.name, prop.major, prop.minor,
              have_cublas ? cublas.origin.c_str() : "not found (set LD_LIBRARY_PATH to a libcublas.so.13 or .12)");
  std::printf("| kernel | m×n×k | GFLOP/s, 64² tiles | GFLOP/s, 128² tiles | shape gets | GFLOP/s | cuBLAS GFLOP/s | "
              "ratio (ours/cuBLAS speed) | max error / max |ref| |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
  const Cublas* base = have_cublas ? &cublas : nullptr;
  const std::vector<Shape3> shapes{
      {"MLP forward layer 1", 200, 200, 784, false, true},   // x Wᵀ
      {"MLP forward layer 2", 200, 200, 200, false, true},
      {"MLP forward output", 200, 10, 200, false, true},
      {"MLP weight gradient", 200, 784, 200, true, false},   // gᵀ x
      {"MLP input gradient", 200, 784, 200, false, false},   // g W
      {"EMNIST MLP forward layer 1", 128, 128, 784, false, true},
      {"EMNIST MLP forward layer 2", 128, 512, 128, false, true},
      {"EMNIST MLP forward layer 3", 128, 128, 512, false, true},
      {"EMNIST MLP forward output", 128, 47, 128, false, true},
      {"EMNIST MLP weight gradient, layer 2", 512, 128, 128, true, false},
      {"CNN dense forward", 64, 128, 3136, false, true},
      {"CNN dense weight gradient", 128, 3136, 64, true, false},
      {"NTK Gram H Hᵀ, 1280 points", 1280, 1280, 200, false, true},
      {"NTK tile D_I D_Jᵀ, EMNIST layer 2, 64 points", 3008, 3008, 512, false, true},
      {"NTK Gram tile, EMNIST", 8192, 8192, 200, false, true},
      {"square", 4096, 4096, 4096, false, false},
  };
  for (const auto& s : shapes) bench_gemm<float>(base, s, DType::f32);
  for (const auto& s : shapes) bench_gemm<double>(base, s, DType::f64);
  // The NTK probe's trace kernel of a layer: an f64 product over its C · width signal columns.
  bench_gemm<double>(base, {"NTK trace kernel, EMNIST layer 2", 1280, 1280, 47 * 512, false, true}, DType::f64);

  std::printf("\n| TF32 kernel (optional, not the default) | m×n×k | GFLOP/s | cuBLAS TF32 GFLOP/s | ratio (ours/cuBLAS speed) | "
              "max error / max |ref| | cuBLAS TF32's |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- | --- |\n");
  for (int i : {0, 1, 3, 10, 12, 15}) bench_gemm_tf32(base, shapes[static_cast<std::size_t>(i)]);

  section("dense layer forward", bench_dense_forward);

  Cudnn cudnn;
  const bool have_cudnn = cudnn.load();
  std::printf("\ncuDNN: %s\n\n", have_cudnn ? "libcudnn.so.9" : "not found (set LD_LIBRARY_PATH to a libcudnn.so.9)");
  std::printf("| kernel | input, filters | GFLOP/s | cuDNN GFLOP/s | ratio (ours/cuDNN speed) | max error / max |ref| |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- |\n");
  const ConvShape cnn_layers[] = {{"CNN layer 1", 128, 1, 28, 28, 32, 3, 1}, {"CNN layer 2", 128, 32, 14, 14, 64, 3, 1}};
  for (const ConvShape& c : cnn_layers) bench_conv(have_cudnn ? &cudnn : nullptr, c);
  std::printf("\n| TF32 kernel (optional, not the default) | input, filters | GFLOP/s | cuDNN TF32 GFLOP/s | "
              "ratio (ours/cuDNN speed) | max error / max |ref| |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- |\n");
  for (const ConvShape& c : cnn_layers) bench_conv(have_cudnn ? &cudnn : nullptr, c, true);
  Generator gen(1);
  section("training step, MLP", [&] {
    bench_training_step("MLP 784-200-200-10, batch 200, MSE, AdamW", models::make_mlp({.widths = {784, 200, 200, 10}, .init_scale = 8}, gen),
                        Shape{200, 784}, true, " (target ≤ 20 µs)");
  });
  section("training step, CNN", [&] {
    bench_training_step("the study's CNN, batch 64, cross-entropy, AdamW", models::make_cnn({}, gen), Shape{64, 1, 28, 28}, false, "");
  });
  section("geometry probe", bench_geometry_layer);
  section("NTK probe", bench_ntk_probe);
  return 0;
}
