#pragma once
// bench_cuda's tables, one file each; main.cpp prints them in this order.
#include "benchmarks/cuda/vendor_libraries.h"

namespace gs::bench_cuda {

// gemm.cpp: our SGEMM and DGEMM in both tilings against cuBLAS at the study's shapes, the TF32
// tensor-core kernel against cuBLAS's TF32 mode (cublas null: the baseline columns say n/a).
void gemm_tables(const Cublas* cublas);
// gemm.cpp: a deep dense layer's forward split along its depth against unsplit.
void bench_dense_forward();
// conv.cpp: the CNN's two convolution layers, each pass, FP32 and TF32, against cuDNN.
void conv_tables(const Cudnn* cudnn);
// training_step.cpp: the MNIST MLP's and the CNN's training steps, eager and replayed as a graph.
void training_step_tables();
// training_step.cpp: for a profiler, 3 replays of the MNIST MLP's captured step and nothing else.
void replay_step_for_profiler();
// probes.cpp: the geometry probe of an EMNIST-sized layer, GPU against CPU.
void bench_geometry_layer();
// probes.cpp: the NTK probe of one EMNIST probe set on the GPU.
void bench_ntk_probe();

}  // namespace gs::bench_cuda
