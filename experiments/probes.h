#pragma once
// The probes a recipe asks for (probe.ntk, probe.geometry and their settings), as hooks the
// runner calls at every probe step and `grokscope probe` calls on a run's checkpoints.
#include <string>
#include <utility>
#include <vector>

#include "experiments/recipe.h"
#include "experiments/runner.h"

namespace gs::experiments {

// ("ntk", hook), ("geometry", hook), each present when the recipe turns it on. Each hook holds
// its probe's state across probe steps (the NTK's step-0 and previous kernels), so it serves one
// run, its steps called in order.
std::vector<std::pair<std::string, ProbeHook>> recipe_probes(const Recipe& recipe);

}  // namespace gs::experiments
