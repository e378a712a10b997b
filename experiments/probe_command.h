#pragma once
// `grokscope probe RUN_DIR --out DIR [--set probe.KEY=VALUE ...]`: the probes again on a run's
// checkpoints (every ckpt/step_N.safetensors, step 0 first), with other probe settings (another
// margin κ, more Gaussian vectors, larger probe sets, the geometry of a run trained without it),
// into a directory of their own. DIR gets the probes' CSVs and what `grokscope report` needs
// beside them: the recipe with its new probe keys, the run's metrics.csv and its run.json (with
// where and how it was probed), so that `grokscope report RUN_DIR DIR` compares the two.
// `grokscope probe --resume DIR` continues a stopped probe where it stopped, with the settings
// it was started with (DIR/recipe.toml).
#include <filesystem>
#include <string>
#include <vector>

#include "engine/dtype.h"

namespace gs::experiments {

struct ProbeCommand {
  std::filesystem::path run;              // a run directory written by grokscope train (none with resume)
  std::filesystem::path out;              // where the probes write; never the run directory itself
  std::vector<std::string> overrides;     // probe.KEY=VALUE only: the rest made the checkpoints
  Device device = Device::cpu;            // cuda: the NTK and geometry probes run there, as in training
  bool quiet = false;                     // no line per probed step
  std::vector<std::string> command_line;  // recorded in DIR/run.json
  bool resume = false;                    // continue the stopped probe in `out` (its run from its run.json)
  std::size_t stop_after_steps = 0;       // tests: stop after this many steps, as SIGINT would (0: never)
};

// Returns 0, or 130 when stopped by SIGINT or SIGTERM between two steps (the rows of the steps
// probed so far are kept, and --resume continues from there). Bad arguments, a damaged
// checkpoint or a full disk raise gs::Error.
int run_probe_command(const ProbeCommand& cmd);

// The steps of a run's ckpt/step_N.safetensors, ascending (resume.safetensors is not a step).
std::vector<std::int64_t> checkpoint_steps(const std::filesystem::path& checkpoint_dir);

}  // namespace gs::experiments
