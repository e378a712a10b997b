#pragma once
// Several runs as one table of data: a CSV row per run with its onsets, and a column for every
// recipe key whose value differs between the runs (the swept key of a sweep, the conditions of a
// study), so that `pandas.read_csv("onsets.csv")` can plot the delay against it.
#include <optional>
#include <string>
#include <vector>

#include "experiments/report.h"

namespace gs::experiments {

// A CSV field (RFC 4180: quoted when it holds a comma, a quote or a line break), and a number's
// field: empty where there is none (an onset that did not happen).
std::string csv_field(const std::string& s);
std::string number_field(const std::optional<double>& x);

// The CSV: run, its condition (Condition::label: the runs of one condition, replicates, differ only
// in their seed), the differing keys, then status, last_step, t_fit, the test rise (t_10, t_50,
// t_90, delay in decades), the NTK's onsets on its probe set and its leads, the output layer's
// capacity rise and its lag, its radius, dimension and center correlation t_50 and lags (empty
// where K varied after the fit, for radius and dimension) and its K's range after the fit, and
// every other layer's capacity t_50 and lag ("layers.2:capacity_t50") and its radius, dimension
// and center correlation lags ("layers.2:radius_lag_decades"); an onset that did not happen is
// an empty field.
std::string onsets_csv(const std::vector<RunReport>& runs);

}  // namespace gs::experiments
