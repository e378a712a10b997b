// bench_cuda's convolution tables: the CNN's two convolution layers, each pass (forward, input
// and weight gradients; our implicit GEMM) against cuDNN's heuristic first choice, in FP32 and,
// for the optional TF32 kernels, against cuDNN with tensor-core math.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/cuda/tables.h"
#include "benchmarks/cuda/timing.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/backend.h"

namespace gs::bench_cuda {

namespace {

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
void bench_conv(const Cudnn* cudnn, const ConvShape& sh, bool tf32) {
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
    // Times one cuDNN pass (run(workspace, out)) into `pass`, and its error against ours.
    auto time_cudnn = [](Pass& pass, std::size_t workspace_bytes, const Tensor& ours, auto&& run) {
      Tensor workspace = Tensor::empty(Shape{std::max<std::int64_t>(1, std::int64_t(workspace_bytes / 4 + 1))}, DType::f32,
                                       Device::cuda);
      Tensor ref = Tensor::zeros(ours.shape(), DType::f32, Device::cuda);
      pass.theirs = median_seconds([&] { run(workspace.raw(), ref.raw()); }, 20);
      pass.err = relative_error(ours, ref);
    };
    int found = 0;
    {
      cudnnConvolutionFwdAlgoPerf_t perf[8];
      cudnn->pick_algorithm(cudnn->handle, xdesc, fdesc, cdesc, ydesc, 8, &found, perf);
      const auto algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
      std::size_t bytes = 0;
      cudnn->workspace_size(cudnn->handle, xdesc, fdesc, cdesc, ydesc, algo, &bytes);
      time_cudnn(passes[0], bytes, y, [&](void* workspace, void* out) {
        cudnn->forward(cudnn->handle, &one, xdesc, xd.raw(), fdesc, wd.raw(), cdesc, algo, workspace, bytes, &zero, ydesc, out);
      });
    }
    {
      cudnnConvolutionBwdDataAlgoPerf_t perf[8];
      cudnn->pick_data_algorithm(cudnn->handle, fdesc, ydesc, cdesc, xdesc, 8, &found, perf);
      const auto algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
      std::size_t bytes = 0;
      cudnn->data_workspace_size(cudnn->handle, fdesc, ydesc, cdesc, xdesc, algo, &bytes);
      time_cudnn(passes[1], bytes, gx, [&](void* workspace, void* out) {
        cudnn->backward_data(cudnn->handle, &one, fdesc, wd.raw(), ydesc, gyd.raw(), cdesc, algo, workspace, bytes, &zero,
                             xdesc, out);
      });
    }
    {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[8];
      cudnn->pick_filter_algorithm(cudnn->handle, xdesc, ydesc, cdesc, fdesc, 8, &found, perf);
      const auto algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
      std::size_t bytes = 0;
      cudnn->filter_workspace_size(cudnn->handle, xdesc, ydesc, cdesc, fdesc, algo, &bytes);
      time_cudnn(passes[2], bytes, gw, [&](void* workspace, void* out) {
        cudnn->backward_filter(cudnn->handle, &one, xdesc, xd.raw(), ydesc, gyd.raw(), cdesc, algo, workspace, bytes, &zero,
                               fdesc, out);
      });
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

}  // namespace

void conv_tables(const Cudnn* cudnn) {
  std::printf("| kernel | input, filters | GFLOP/s | cuDNN GFLOP/s | ratio (ours/cuDNN speed) | max error / max |ref| |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- |\n");
  const ConvShape cnn_layers[] = {{"CNN layer 1", 128, 1, 28, 28, 32, 3, 1}, {"CNN layer 2", 128, 32, 14, 14, 64, 3, 1}};
  for (const ConvShape& c : cnn_layers) bench_conv(cudnn, c, false);
  std::printf("\n| TF32 kernel (optional, not the default) | input, filters | GFLOP/s | cuDNN TF32 GFLOP/s | "
              "ratio (ours/cuDNN speed) | max error / max |ref| |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- |\n");
  for (const ConvShape& c : cnn_layers) bench_conv(cudnn, c, true);
}

}  // namespace gs::bench_cuda
