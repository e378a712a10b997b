#pragma once
// The answer a run directory holds: when the network fit its training set, when test accuracy
// rose, when the NTK moved and when each layer's capacity changed, the lags between them, and a
// one-line verdict. Read from metrics.csv, ntk.csv and geometry.csv; written as summary.json.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/onsets.h"

namespace gs::experiments {

// Thresholds of the report, in one place so the docs and the tests can name them.
struct ReportRules {
  double fit_accuracy = 0.99;        // t_fit: first step with train accuracy at least this
  double min_accuracy_change = 0.01; // a test curve that moves less than this did not rise
  double ntk_absolute = 0.1;         // second NTK departure: distance to init above this
  double same_time_decades = 0.25;   // two events closer than this happened "together"
  double no_delay_factor = 2;        // "no delay" when t_50 <= factor * t_fit
  double capacity_se_multiple = 3;   // capacity changes smaller than this many s.e. are noise
  double geometry_min_change = 0.05; // radius, dimension, center correlation: changes below this fraction of the value at t_fit are noise
};

// How one of a layer's geometry measures changed after the fit, and where its midpoint sits
// relative to the test rise's.
struct MeasureOnsets {
  Rise rise;
  std::optional<double> lag_decades;  // log10(t_50 / test t_50); negative: earlier
  bool left_out_for_k = false;        // t10, t50, t90 left empty: K varied after the fit (LayerOnsets)
};

struct LayerOnsets {
  std::string layer;
  Rise capacity;
  std::optional<double> lag_decades;  // log10(capacity t_50 / test t_50); negative: earlier
  std::optional<double> lag_steps;
  // Radius and dimension are measured once the centers' common structure is removed, and jump
  // whenever its K does: where K is not the same at every step from t_fit on, their onsets are
  // left out (left_out_for_k; their start and final values stay). The center correlation is
  // measured before the removal, and the capacity's larger change is reported whatever K does.
  MeasureOnsets radius, dimension, center_correlation;
  std::int64_t k_min = 0, k_max = 0;  // the removed structure's K from t_fit on (0 and 0 without a k column)
  bool k_varies() const { return k_min != k_max; }
  std::int64_t k_most_common = 0;      // over the whole run: the K to suggest for probe.geometry_center_k
};

struct NtkOnsets {
  std::string probe_set;
  double max_distance = 0;
  std::optional<double> t_half_max;   // first step at 50% of the maximum distance to init
  std::optional<double> t_absolute;   // first step with distance to init above ReportRules::ntk_absolute
  std::optional<double> lead_decades; // log10(test t_50 / t_half_max); positive: NTK first
  std::optional<double> lead_steps;
  // The first step at half of the distance the kernel has at the test rise's t_50: how early it
  // made the movement it shows when test accuracy rises, blind to any movement after the rise
  // (which can set its maximum). Only where test accuracy rose after the fit.
  std::optional<double> t_half_at_rise;
  std::optional<double> lead_at_rise_decades;  // log10(test t_50 / t_half_at_rise)
};

struct RunReport {
  std::filesystem::path dir;
  std::string recipe;       // the recipe's name, from run.json or recipe.toml
  std::string dataset;      // data.dataset of the recipe
  std::string model;        // kind and widths or channels, to tell incomparable runs apart
  std::string status;       // run.json's status: finished, running, stopped, failed, unknown
  double last_step = 0;
  std::optional<double> t_fit;
  double best_train_accuracy = 0;
  Rise test;                // from t_fit to the end
  Rise test_from_start;     // from the first logged step to the end: tells "rose with the fit" apart
  std::optional<NtkOnsets> ntk;            // the train probe set when logged, else test
  std::vector<NtkOnsets> ntk_sets;          // every probe set of ntk.csv
  std::vector<LayerOnsets> layers;          // geometry.csv's layers, in the file's order
  std::vector<std::string> notes;           // what could not be reported, and why
  std::string verdict;
};

// The test rise's midpoint: only a curve that rose after the fit has one (a fall is no rise).
std::optional<double> rise_t50(const RunReport& r);
// log10(test t_50 / t_fit): how many decades test accuracy rose after the fit; only where it fit and rose.
std::optional<double> delay_decades(const RunReport& r);
// x to be printed with `digits` decimals: one that rounds to zero prints as 0, not -0.
double without_negative_zero(double x, int digits);
// Test accuracy rose after the fit, and later than ReportRules::no_delay_factor · t_fit.
bool delayed_rise(const RunReport& r, const ReportRules& rules = {});

// Where an event sits relative to the test rise, given its lead log10(t_50 / t): within
// ReportRules::same_time_decades of it, "with" it.
enum class Timing { before, with, after };
Timing timing_of(double lead_decades, const ReportRules& rules = {});
// A layer by its geometry.csv name, or null; output_layer: "output", the layer the verdict speaks of.
const LayerOnsets* find_layer(const RunReport& r, const std::string& layer);
const LayerOnsets* output_layer(const RunReport& r);

// Reads and analyses one run directory. Throws gs::Error, naming the file and line, when
// metrics.csv is missing, empty or malformed; a missing or broken ntk.csv or geometry.csv is a
// note, and the rest is reported.
RunReport analyze_run(const std::filesystem::path& dir, const ReportRules& rules = {});

nlohmann::ordered_json report_json(const RunReport& r, const ReportRules& rules = {});

// Names that tell the runs apart: each directory's last component, or as many of its last
// components as it takes ("init8/seed=0" beside "init2/seed=0").
std::vector<std::string> run_labels(const std::vector<RunReport>& runs);

// The table printed on stdout: one row per run (named by run_labels), then one verdict line per run.
std::string report_table(const std::vector<RunReport>& runs);

// Lines saying which runs cannot be compared with the first (another dataset or architecture).
std::vector<std::string> comparability_warnings(const std::vector<RunReport>& runs);

}  // namespace gs::experiments
