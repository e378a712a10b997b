#pragma once
// The NTK probe as the runner calls it at every probe step: the per-logit kernel on the train and
// test probe sets, its distance to the run's own step-0 kernel and to the previous probe step's,
// and its companions, one row per set in ntk.csv:
//   step, probe_set, distance_to_init, distance_to_previous, trace_distance_to_init, alignment,
//   output_distance_to_init, rest_distance_to_init, share_<layer>...
// The output layer's block (output_gram ⊗ I) and the rest (K minus it) have their own distances.
// At the run's last step it also writes the distance between every pair of probe steps:
// ntk_pairwise_steps.npy (int32 [S]) and ntk_pairwise_{train,test}.npy (float64 [S, S]),
// recomputing each step's kernel from its checkpoint.
//
// Kernels that fit in memory are held; larger ones (EMNIST's 1280 points × 47 logits) are kept
// as their factors and compared streamed, tile by tile (engine/probe/ntk_stream.h). A run that
// trains on a GPU keeps its kernels as factors too, computed and compared on the device (unless
// probe.save_kernels asks for held kernels, which are the cpu's).
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/probe/ntk_stream.h"
#include "experiments/runner.h"

namespace gs::experiments {

class NtkProbe {
 public:
  explicit NtkProbe(bool save_kernels = false, bool force_streamed = false)
      : save_kernels_(save_kernels), force_streamed_(force_streamed) {}
  void operator()(const ProbeContext& context);
  bool streamed() const { return streamed_; }
  bool measured_off_cpu() const { return measured_off_cpu_; }  // the factors were the device's

  // One kernel as the probe keeps it.
  struct Measurement {
    std::vector<std::string> layer_names;
    std::vector<double> layer_traces;
    Tensor trace, output_gram;  // f64 [n, n]
    Tensor kernel, rest;        // held kernels: K, and K without its output block (f64)
    double kernel_norm = 0, rest_norm = 0;  // held kernels: ‖K‖_F and ‖rest‖_F, each computed once
    probe::KernelFactors factors;  // streamed kernels: their factors, and ‖K‖² once known (factors.norm2)
  };

 private:
  struct SetState {
    Measurement init, previous;
    bool have_init = false, have_previous = false;
  };
  Measurement measure(nn::Sequential& model, const Tensor& x) const;
  // The network the probe measures: the device copy where the factors are streamed, else the cpu model.
  nn::Sequential& probe_model(const ProbeContext& context) const;
  void recover(const ProbeContext& context);  // after --resume: rebuild init and previous from checkpoints
  void open_csv(const ProbeContext& context, const Measurement& first);
  void write_pairwise(const ProbeContext& context);

  bool save_kernels_, force_streamed_;
  bool streamed_ = false, measured_off_cpu_ = false;
  std::map<std::string, SetState> sets_;
  std::ofstream csv_;
  bool recovered_ = false;
  bool said_undefined_ = false;  // a zero kernel's NaN distances were announced
};

}  // namespace gs::experiments
