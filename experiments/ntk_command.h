#pragma once
// grokscope ntk: the NTK of one checkpoint (grokscope's or PyTorch's, for the recipe's
// architecture), and its distance to a second one.
#include <filesystem>
#include <optional>
#include <string>

#include "experiments/recipe.h"

namespace gs::experiments {

struct NtkCommand {
  Recipe recipe;
  std::filesystem::path checkpoint, against;  // against: optional
  std::string probe_set = "test";             // train | test
  std::int64_t n = 0;                         // 0: the recipe's probe size
  std::filesystem::path inputs;               // .npy images instead of a probe subset (optional)
  bool json = false;
};

// Prints the result (a table, or one JSON object) and returns the exit status.
int run_ntk_command(const NtkCommand& command);

}  // namespace gs::experiments
