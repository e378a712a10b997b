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
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/probe/ntk.h"
#include "experiments/runner.h"

namespace gs::experiments {

class NtkProbe {
 public:
  void operator()(const ProbeContext& context);

 private:
  struct Reference {
    Tensor kernel, trace, output_gram, rest;
  };
  struct SetState {
    Reference init, previous;
    bool have_init = false, have_previous = false;
  };
  static Reference reference_of(const probe::Ntk& k);
  void recover(const ProbeContext& context);  // after --resume: rebuild init and previous from checkpoints
  void open_csv(const ProbeContext& context, const probe::Ntk& first);
  void write_pairwise(const ProbeContext& context);

  std::map<std::string, SetState> sets_;
  std::ofstream csv_;
  bool recovered_ = false;
};

}  // namespace gs::experiments
