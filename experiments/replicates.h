#pragma once
// Runs whose recipes differ only in their seed are replicates of one condition: the spread of
// their onsets says how much of one run's delay, lead and lag belongs to the condition and how
// much to the draw (the initial weights, the batch order, the probe sets). `grokscope report`
// groups the runs it is given by condition and, when some condition has more than one run,
// prints each group's medians and ranges and writes them as replicates.csv.
#include <string>
#include <vector>

#include "experiments/report.h"
#include "experiments/run_set.h"

namespace gs::experiments {

// A quantity over a group's runs: how many runs have it (an onset that did not happen is left
// out), its median (numpy's: the mean of the middle two for an even count), least and largest.
struct Spread {
  std::size_t n = 0;
  double median = 0, min = 0, max = 0;
};
Spread spread_of(std::vector<double> values);

// How many runs had an event before, with or after their own test rise (timing_of).
struct TimingCounts {
  std::size_t before = 0, with = 0, after = 0;
  void add(double lead_decades, const ReportRules& rules);
};

struct ReplicateGroup {
  Condition condition;              // its runs, their seeds, and what tells it from the others
  std::size_t unfinished = 0;       // runs whose status is not `finished` (onsets on what they logged)
  std::size_t fit = 0, rose = 0, delayed = 0;  // fit their training set; test accuracy rose after; delayed_rise
  // Relative to the test rise, over the runs that have the lead or the lag: the NTK's half-way
  // point and the output layer's capacity, radius, dimension and center correlation midpoints.
  TimingCounts ntk, capacity, radius, dimension, center_correlation;
  Spread t_fit, test_t50, delay_decades, ntk_t_half_max, ntk_t_above, ntk_lead_decades, ntk_t_half_at_rise,
      ntk_lead_at_rise_decades, capacity_t50, capacity_lag_decades, radius_lag_decades, dimension_lag_decades,
      center_correlation_lag_decades;
  // Every other layer's capacity lag (its t_50 after the test rise's, in decades), by layer name,
  // for the layers of any run given: the same columns for every group.
  std::vector<std::pair<std::string, Spread>> layer_lag_decades;
};

// Every condition of the runs (conditions_of) with its runs' onsets summarized. Empty when no two
// runs are replicates: then there is nothing to summarize that onsets.csv does not already say.
std::vector<ReplicateGroup> replicate_groups(const std::vector<RunReport>& runs, const ReportRules& rules = {});

// Printed after the report's table: a row per group (runs, delayed, and median [min, max] of
// t_fit, t_50, the NTK's lead and the output capacity's lag), then one line per group counting
// where the NTK and the output layer's measures moved relative to the test rise.
// `rules`: those the groups were made with, for the footnote's definition of "delayed".
std::string replicates_table(const std::vector<ReplicateGroup>& groups, const ReportRules& rules = {});

// The same as data, a row per group: the condition's label and keys, the counts, and for every quantity
// its n, median, min and max (`<quantity>_median`, ...), then every other layer's capacity lag
// (`layers.2:capacity_lag_decades_median`, ...), empty where no run has it.
std::string replicates_csv(const std::vector<ReplicateGroup>& groups);

}  // namespace gs::experiments
