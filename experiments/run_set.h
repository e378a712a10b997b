#pragma once
// The runs one report is given, as a set: each run's resolved recipe, the recipe keys they differ
// in, and their conditions. A condition is what a run's recipe says but for its seed: runs of one
// condition are replicates, whose spread says how much of an onset is the condition and how much
// the draw (the initial weights, the batch order, the probe sets).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "experiments/report.h"

namespace gs::experiments {

inline constexpr const char* seed_key = "train.seed";

// A run's resolved recipe (RUN_DIR/recipe.toml) as ("section.key", value) pairs in the file's
// order; strings unquoted, numbers in their shortest exact form (0.1), arrays as [a, b]. Empty
// without a readable recipe.
std::vector<std::pair<std::string, std::string>> recipe_values(const RunReport& run);

// Every run's recipe values by key, each recipe.toml read once, and every key in the order first met.
struct RunRecipes {
  std::vector<std::string> keys;
  std::vector<std::map<std::string, std::string>> values;  // one per run; empty without a readable recipe
  // The keys whose values are not the same in every run that has a recipe (a key one of them
  // lacks counts as differing).
  std::vector<std::string> differing() const;
};
RunRecipes read_run_recipes(const std::vector<RunReport>& runs);

// read_run_recipes(runs).differing()
std::vector<std::string> differing_recipe_keys(const std::vector<RunReport>& runs);

// Every layer but the output, of any run's geometry.csv, in the order first met: the same
// per-layer columns for every row of a table of several runs.
std::vector<std::string> layers_besides_output(const std::vector<RunReport>& runs);

struct Condition {
  // The recipe keys that tell the conditions apart (the seed aside; the recipe's name and
  // description only where no setting does), with this one's values; empty when every run is of
  // one condition.
  std::vector<std::pair<std::string, std::string>> keys;
  std::string recipe;             // the recipe's name, for a label when `keys` is empty
  std::vector<std::size_t> runs;  // indices into the runs, in their order
  std::vector<std::string> seeds; // each run's train.seed
  std::string label() const;      // "init_scale=8" (each key's last part), or the recipe's name
};

// Every run with a readable recipe.toml in exactly one condition, the conditions in the order of
// their first runs; a run without one is in none.
std::vector<Condition> conditions_of(const std::vector<RunReport>& runs, const RunRecipes& recipes);

}  // namespace gs::experiments
