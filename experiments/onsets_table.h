#pragma once
// Several runs as one table of data: a CSV row per run with its onsets, and a column for every
// recipe key whose value differs between the runs (the swept key of a sweep, the conditions of a
// study), so that `pandas.read_csv("onsets.csv")` can plot the delay against it.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/report.h"

namespace gs::experiments {

// A run's resolved recipe (RUN_DIR/recipe.toml) as ("section.key", value) pairs in the file's
// order; strings unquoted, other values as TOML writes them. Empty without a readable recipe.
std::vector<std::pair<std::string, std::string>> recipe_values(const RunReport& run);

// Every run's recipe values by key, each recipe.toml read once, and every key in the order first met.
struct RunRecipes {
  std::vector<std::string> keys;
  std::vector<std::map<std::string, std::string>> values;  // one per run; empty without a readable recipe
  // The keys whose values are not the same in every run (a key one run lacks counts as differing).
  std::vector<std::string> differing() const;
};
RunRecipes read_run_recipes(const std::vector<RunReport>& runs);

// The keys whose values are not the same in every run (a key one run lacks counts as differing).
std::vector<std::string> differing_recipe_keys(const std::vector<RunReport>& runs);

// A CSV field (RFC 4180: quoted when it holds a comma, a quote or a line break), and a number's
// field: empty where there is none (an onset that did not happen).
std::string csv_field(const std::string& s);
std::string number_field(const std::optional<double>& x);

// The CSV: run, the differing keys, then status, last_step, t_fit, the test rise (t_10, t_50,
// t_90, delay in decades), the NTK's onsets on its probe set and its lead, the output layer's
// capacity rise and its lag, and every other layer's capacity t_50 and lag ("layers.2:capacity_t50");
// an onset that did not happen is an empty field.
std::string onsets_csv(const std::vector<RunReport>& runs);

}  // namespace gs::experiments
