#pragma once
// The training runner: one recipe, one run directory. It trains, logs metrics on the recipe's
// schedule, writes a checkpoint at every probe step (step 0 = the real initial weights) and
// calls the registered probes there. Everything it knows goes to the run directory:
//   recipe.toml   the resolved recipe (every key)       run.json     revision, command, status
//   metrics.csv   the metric rows                       ckpt/step_N.safetensors
//   ckpt/resume.safetensors  weights, optimizer state and data order to continue from
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/nn/layers.h"
#include "experiments/recipe.h"

namespace gs::experiments {

struct ProbeContext {
  std::int64_t step;
  nn::Sequential& model;
  const data::Dataset& probe_train;  // class-balanced subset of the training subset
  const data::Dataset& probe_test;   // class-balanced subset of the test set
  const data::Dataset& probe_geometry;  // probe.geometry_per_class test points of every class
  const std::filesystem::path& run_dir;      // where the probes write their CSVs
  const std::filesystem::path& checkpoints;  // where ckpt/step_N.safetensors of the probed steps are
  bool final_step = false;  // the run's last step: probes may summarize the whole run here
  // Where training runs on a GPU: the trained network there, with the same weights as `model`.
  // Probes that can run on the device use it; they leave its weights as they found them.
  nn::Sequential* device_model = nullptr;
};
using ProbeHook = std::function<void(const ProbeContext&)>;

struct RunOptions {
  std::filesystem::path out;              // the run directory
  std::vector<std::string> command_line;  // recorded in run.json
  bool quiet = false;                     // no progress output
  std::int64_t stop_after_step = -1;      // behave as if a stop signal arrived after this step (tests)
  // Where training runs. The weights are drawn on the CPU either way, so every device starts
  // from the same network; the probes run on the CPU, on a copy of the trained weights.
  Device device = Device::cpu;
  // On a device that can (cuda), replay the training step as one captured graph per batch shape
  // (engine/step_graph.h); false runs it kernel by kernel. Either way the numbers are the same.
  bool step_graph = true;
  // On cuda, the training step's FP32 GEMMs and convolutions in TF32 on the tensor cores
  // (kernels/gemm.h): operands rounded to 10 bits of mantissa. The evaluations and the probes
  // stay in FP32. Refused on the CPU, which has no TF32.
  bool tf32 = false;
};

struct Evaluation {
  double loss = 0, accuracy = 0;
};

// The recipe's data: the training subset, the test set and the class-balanced probe sets.
struct RunData {
  data::Dataset train, test, probe_train, probe_test, probe_geometry;
};
RunData load_run_data(const Recipe& recipe);
// The recipe's network with its seeded initial weights, checked against the data's shape.
std::shared_ptr<nn::Sequential> make_model(const Recipe& recipe, const data::Dataset& train, Generator& gen);
// Copies a checkpoint's tensors into the model; names the first missing or mismatching tensor.
void load_checkpoint(nn::Sequential& model, const std::filesystem::path& file);

// Loss of the recipe's kind on logits: mse against one-hot targets, or cross-entropy.
Tensor recipe_loss(const std::string& kind, const Tensor& logits, const Tensor& labels, std::int64_t classes);
// Mean loss and accuracy over a whole dataset, without the tape, in chunks.
Evaluation evaluate(nn::Module& model, const data::Dataset& d, const std::string& loss_kind);

// Seconds by part of a run, in the order the parts were first named.
struct TimeSplit {
  std::vector<std::pair<std::string, double>> parts;
  double& operator[](const std::string& part);  // the part's seconds, added as 0 when new
  std::string summary(double total) const;      // "2m14s: training 1m57s (87%), evaluation 0m05s (4%), ..."
};

class Runner {
 public:
  Runner(Recipe recipe, RunOptions options);
  // Continues the run in run_dir from its ckpt/resume.safetensors (written at every probe step
  // and when stopped), with the recipe it recorded. On the CPU the continued run is bit-identical
  // to one that was never stopped.
  static Runner resume(const std::filesystem::path& run_dir, RunOptions options);
  void add_probe(std::string name, ProbeHook hook);
  const Recipe& recipe() const { return recipe_; }
  // Trains to the end: returns 0. Stopped by SIGINT or SIGTERM: finishes the step, checkpoints,
  // flushes and returns 130. A non-finite loss or weight raises gs::Error naming the step and
  // the last good checkpoint.
  int run();
  // After run(): where the run's time went (with the time before a resume), and all of it.
  const TimeSplit& time_split() const { return time_split_; }
  double total_seconds() const { return total_seconds_; }

 private:
  Recipe recipe_;
  RunOptions options_;
  std::vector<std::pair<std::string, ProbeHook>> probes_;
  bool resuming_ = false;
  TimeSplit time_split_;
  double total_seconds_ = 0;
};

std::string git_revision();  // of the source tree grokscope was built from; "unknown" without git

}  // namespace gs::experiments
