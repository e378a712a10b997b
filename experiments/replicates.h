#pragma once
// Runs whose recipes differ only in their seed are replicates of one condition: the spread of
// their onsets says how much of one run's delay, lead and lag belongs to the condition and how
// much to the draw (the initial weights, the batch order, the probe sets). `grokscope report`
// groups the runs it is given by condition and, when some condition has more than one run,
// prints each group's medians and ranges and writes them as replicates.csv.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/report.h"

namespace gs::experiments {

inline constexpr const char* seed_key = "train.seed";

// A quantity over a group's runs: how many runs have it (an onset that did not happen is left
// out), its median (numpy's: the mean of the middle two for an even count), least and largest.
struct Spread {
  std::size_t n = 0;
  double median = 0, min = 0, max = 0;
};
Spread spread_of(std::vector<double> values);

struct ReplicateGroup {
  // The recipe keys that tell the groups apart (seed aside) and this group's values; empty when
  // every run given is of one condition.
  std::vector<std::pair<std::string, std::string>> condition;
  std::string recipe;               // the recipe's name, for a label when the condition is empty
  std::vector<std::size_t> runs;    // indices into the runs given, in their order
  std::vector<std::string> seeds;
  std::size_t unfinished = 0;       // runs whose status is not `finished` (onsets on what they logged)
  std::size_t fit = 0, rose = 0, delayed = 0;  // fit their training set; test accuracy rose after; delayed_rise
  // Relative to the test rise (timing_of), over the runs that have the lead or the lag.
  std::size_t ntk_before = 0, ntk_with = 0, ntk_after = 0;
  std::size_t capacity_before = 0, capacity_with = 0, capacity_after = 0;
  Spread t_fit, test_t50, delay_decades, ntk_t_half_max, ntk_t_above, ntk_lead_decades, capacity_t50,
      capacity_lag_decades;
  std::string label() const;        // "init_scale=8" (each key's last part), or the recipe's name
};

// The runs grouped by every recipe key but train.seed, in the order of each group's first run.
// Runs without a readable recipe.toml belong to no group. Empty when no two runs are replicates:
// then there is nothing to summarize that onsets.csv does not already say.
std::vector<ReplicateGroup> replicate_groups(const std::vector<RunReport>& runs, const ReportRules& rules = {});

// Printed after the report's table: a row per group (runs, delayed, and median [min, max] of
// t_fit, t_50, the NTK's lead and the output capacity's lag), then one line per group counting
// where the NTK and the capacity moved relative to the test rise.
std::string replicates_table(const std::vector<ReplicateGroup>& groups);

// The same as data, a row per group: the condition's keys, the counts, and for every quantity
// its n, median, min and max (`<quantity>_median`, ...), empty where no run has it.
std::string replicates_csv(const std::vector<ReplicateGroup>& groups);

}  // namespace gs::experiments
