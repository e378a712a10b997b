#include "experiments/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "engine/error.h"
#include "experiments/recipe.h"
#include "experiments/run_csv.h"

namespace gs::experiments {

namespace fs = std::filesystem;

namespace {

void read_run_info(RunReport& r) {
  const fs::path info_file = r.dir / "run.json";
  r.status = "unknown";
  if (fs::exists(info_file)) {
    try {
      const auto info = nlohmann::json::parse(std::ifstream(info_file));
      r.recipe = info.value("recipe", "");
      r.status = info.value("status", "unknown");
    } catch (const std::exception& e) {
      r.notes.push_back(fmt::format("run.json unreadable ({}); status unknown", e.what()));
    }
  } else {
    r.notes.push_back("no run.json; status unknown");
  }
  const fs::path recipe_file = r.dir / "recipe.toml";
  if (!fs::exists(recipe_file)) {
    r.notes.push_back("no recipe.toml; dataset and model unknown");
    return;
  }
  try {
    const Recipe recipe = load_recipe(recipe_file);
    if (r.recipe.empty()) r.recipe = recipe.name;
    r.dataset = recipe.data.dataset;
    r.model = recipe.model.kind;
    for (std::size_t i = 0; i < recipe.model.widths.size(); ++i)
      r.model += (i == 0 ? " " : "-") + std::to_string(recipe.model.widths[i]);
  } catch (const Error& e) {
    r.notes.push_back(fmt::format("recipe.toml unreadable: {}", e.what()));
  }
}

}  // namespace

std::optional<double> rise_t50(const RunReport& r) {
  return r.test.moved && r.test.upwards ? r.test.t50 : std::nullopt;
}

std::optional<double> delay_decades(const RunReport& r) {
  if (!r.t_fit || !rise_t50(r)) return std::nullopt;
  return decades_between(*r.t_fit, *rise_t50(r));
}

double without_negative_zero(double x, int digits) { return std::abs(x) < 0.5 * std::pow(10.0, -digits) ? 0.0 : x; }

bool delayed_rise(const RunReport& r, const ReportRules& rules) {
  return r.t_fit && rise_t50(r) && *rise_t50(r) > rules.no_delay_factor * *r.t_fit;
}

Timing timing_of(double lead_decades, const ReportRules& rules) {
  if (std::abs(lead_decades) < rules.same_time_decades) return Timing::with;
  return lead_decades > 0 ? Timing::before : Timing::after;
}

const LayerOnsets* find_layer(const RunReport& r, const std::string& layer) {
  for (const auto& l : r.layers)
    if (l.layer == layer) return &l;
  return nullptr;
}

const LayerOnsets* output_layer(const RunReport& r) { return find_layer(r, "output"); }

namespace {

void analyze_ntk(RunReport& r, const ReportRules& rules) {
  const fs::path file = r.dir / "ntk.csv";
  if (!fs::exists(file)) {
    r.notes.push_back("no ntk.csv (the recipe's probe.ntk is off, or the run failed before its first probe step): no NTK onsets");
    return;
  }
  try {
    const CsvTable t = read_csv(file);
    r.notes.insert(r.notes.end(), t.notes.begin(), t.notes.end());
    for (const auto& set : distinct(t, "probe_set")) {
      const Series d = series_of(t, "distance_to_init", "probe_set", set);
      if (d.empty()) continue;
      NtkOnsets n;
      n.probe_set = set;
      n.max_distance = *std::max_element(d.value.begin(), d.value.end());
      if (n.max_distance > 0) n.t_half_max = first_crossing(d, 0.5 * n.max_distance, true);
      n.t_absolute = first_crossing(d, rules.ntk_absolute, true);
      if (n.t_half_max && rise_t50(r)) {
        n.lead_decades = decades_between(*n.t_half_max, *rise_t50(r));
        n.lead_steps = *rise_t50(r) - *n.t_half_max;
      }
      if (const auto t50 = rise_t50(r); t50 && value_at(d, *t50) > 0) {
        const double at_rise = value_at(d, *t50);
        n.t_half_at_rise = first_crossing(d, 0.5 * at_rise, true);
        if (n.t_half_at_rise && *n.t_half_at_rise > 0) n.lead_at_rise_decades = decades_between(*n.t_half_at_rise, *t50);
      }
      r.ntk_sets.push_back(n);
    }
    if (r.ntk_sets.empty()) r.notes.push_back("ntk.csv has no rows yet: no NTK onsets");
    for (const auto& n : r.ntk_sets)
      if (n.probe_set == "train") r.ntk = n;
    if (!r.ntk && !r.ntk_sets.empty()) r.ntk = r.ntk_sets.front();
  } catch (const Error& e) {
    r.ntk_sets.clear();
    r.notes.push_back(fmt::format("NTK onsets left out: {}", e.what()));
  }
}

void analyze_geometry(RunReport& r, const ReportRules& rules, double from) {
  const fs::path file = r.dir / "geometry.csv";
  if (!fs::exists(file)) {
    r.notes.push_back("no geometry.csv (the recipe's probe.geometry is off, or the run failed before its first probe step): no capacity onsets");
    return;
  }
  try {
    const CsvTable t = read_csv(file);
    r.notes.insert(r.notes.end(), t.notes.begin(), t.notes.end());
    for (const auto& layer : distinct(t, "layer")) {
      const Series cap = series_of(t, "capacity", "layer", layer);
      if (cap.empty()) continue;
      LayerOnsets l;
      l.layer = layer;
      // Noise floor: a few standard errors of the capacity at the two ends.
      double noise = 0.01 * std::abs(value_at(cap, from));
      if (t.has("capacity_se")) {
        const Series se = series_of(t, "capacity_se", "layer", layer);
        if (!se.empty())
          noise = rules.capacity_se_multiple * std::hypot(value_at(se, from), se.value.back());
      }
      l.capacity = rise_after(cap, from, noise);
      if (l.capacity.t50 && rise_t50(r)) {
        l.lag_decades = decades_between(*rise_t50(r), *l.capacity.t50);
        l.lag_steps = *l.capacity.t50 - *rise_t50(r);
      }
      if (t.has("k")) {
        // K at the steps the rises are read from: from the last logged step at or before t_fit on.
        const Series k = series_of(t, "k", "layer", layer);
        std::map<std::int64_t, int> counts;
        std::size_t first = 0;
        for (std::size_t i = 0; i < k.size(); ++i) {
          ++counts[static_cast<std::int64_t>(k.value[i])];
          if (k.step[i] <= from) first = i;
        }
        if (!k.empty()) {
          const auto after = std::minmax_element(k.value.begin() + static_cast<std::ptrdiff_t>(first), k.value.end());
          l.k_min = static_cast<std::int64_t>(*after.first);
          l.k_max = static_cast<std::int64_t>(*after.second);
          l.k_most_common = std::max_element(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
                              return a.second < b.second;
                            })->first;
        }
      }
      const auto measure = [&](const char* col, bool depends_on_k) {
        MeasureOnsets m;
        const Series s = series_of(t, col, "layer", layer);
        if (s.empty()) return m;
        m.rise = rise_after(s, from, rules.geometry_min_change * std::abs(value_at(s, from)));
        if (depends_on_k && l.k_varies()) {
          m.left_out_for_k = true;
          m.rise.t10 = m.rise.t50 = m.rise.t90 = std::nullopt;
        }
        if (m.rise.t50 && rise_t50(r)) m.lag_decades = decades_between(*rise_t50(r), *m.rise.t50);
        return m;
      };
      l.radius = measure("radius", true);
      l.dimension = measure("dimension", true);
      l.center_correlation = measure("center_correlation", false);
      r.layers.push_back(l);
    }
    if (r.layers.empty()) r.notes.push_back("geometry.csv has no rows yet: no capacity onsets");
    std::vector<std::string> varying;
    std::map<std::int64_t, int> suggested;
    for (const auto& l : r.layers)
      if (l.k_varies()) {
        varying.push_back(fmt::format("{} ({}-{})", l.layer, l.k_min, l.k_max));
        ++suggested[l.k_most_common];
      }
    if (!varying.empty()) {
      const auto k = std::max_element(suggested.begin(), suggested.end(), [](const auto& a, const auto& b) {
                       return a.second < b.second;
                     })->first;
      std::string layers;
      for (const auto& v : varying) layers.append(layers.empty() ? "" : ", ").append(v);
      r.notes.push_back(fmt::format(
          "the removed center structure's K changes after the fit in {}: radius and dimension jump with it, so their "
          "onsets there are left out (the capacity's are kept, but jump too); to fix K at every step: grokscope probe {} "
          "--out DIR --set probe.geometry_center_k={} (or, with no center structure and none of its search's local "
          "minima: --set probe.geometry_center_structure=false)",
          layers, r.dir.string(), std::max<std::int64_t>(k, 1)));
    }
  } catch (const Error& e) {
    r.layers.clear();
    r.notes.push_back(fmt::format("capacity onsets left out: {}", e.what()));
  }
}

std::string steps_text(double t) { return fmt::format("{:.0f}", t); }

// Where event A sits relative to event B, given log10(t_B / t_A): `together` when they are close,
// else "1.1 decades before <noun>" or "0.4 decades after <noun>".
std::string relation(double lead_decades, const ReportRules& rules, const std::string& together,
                     const std::string& noun) {
  if (timing_of(lead_decades, rules) == Timing::with) return together;
  return fmt::format("{:.1f} decades {} {}", std::abs(lead_decades), lead_decades > 0 ? "before" : "after", noun);
}

std::string verdict_of(const RunReport& r, const ReportRules& rules) {
  std::string v;
  if (r.status != "finished" && r.status != "unknown")
    v += fmt::format("({} at step {}; onsets measured on what is logged) ",
                     r.status == "running" ? "in progress" : r.status, steps_text(r.last_step));
  if (!r.t_fit) {
    return v + fmt::format("did not fit its training set (train accuracy peaked at {:.3f}); no onsets",
                           r.best_train_accuracy);
  }
  // After the fit, test accuracy held, fell, or moved less than the rules count as a rise.
  const auto after_fit = [&] {
    return r.test.moved && !r.test.upwards
               ? fmt::format("then fell ({:.3f} at the fit, {:.3f} at the end)", r.test.start_value, r.test.final_value)
               : fmt::format("held ({:.3f} at the fit, {:.3f} at the end)", r.test.start_value, r.test.final_value);
  };
  if (!rise_t50(r) && r.test_from_start.t50 && r.test_from_start.upwards &&
      *r.test_from_start.t50 <= rules.no_delay_factor * *r.t_fit) {
    return v + fmt::format("no delay: test accuracy rose with the fit (t_50 {} from step 0, t_fit {}) and {}",
                           steps_text(*r.test_from_start.t50), steps_text(*r.t_fit), after_fit());
  }
  if (!rise_t50(r)) {
    return v + fmt::format("fit its training set at step {} but test accuracy did not rise after it ({:.3f} -> {:.3f})",
                           steps_text(*r.t_fit), r.test.start_value, r.test.final_value);
  }
  const double t50 = *r.test.t50;
  if (!delayed_rise(r, rules))
    v += fmt::format("no delay (test t_50 {} <= {}·t_fit {})", steps_text(t50), rules.no_delay_factor,
                     steps_text(*r.t_fit));
  else
    v += fmt::format("test accuracy rose {:.1f} decades after the fit (t_fit {}, t_50 {})",
                     decades_between(*r.t_fit, t50), steps_text(*r.t_fit), steps_text(t50));
  if (r.ntk && r.ntk->lead_decades) {
    const double lead = *r.ntk->lead_decades;
    // Half of the largest distance can come late (a second movement after the rise, as weight
    // decay shrinks the weights, or a kernel that keeps moving after it) when the kernel had made
    // the movement it shows at the rise long before: in a delayed run, say that too.
    std::string early;
    if (timing_of(lead, rules) != Timing::before && delayed_rise(r, rules) && r.ntk->lead_at_rise_decades &&
        timing_of(*r.ntk->lead_at_rise_decades, rules) == Timing::before)
      early = fmt::format("half of its largest distance; it had covered half of its distance at the rise by step {}, "
                          "{:.1f} decades before",
                          steps_text(*r.ntk->t_half_at_rise), *r.ntk->lead_at_rise_decades);
    if (timing_of(lead, rules) == Timing::with)
      v += fmt::format("; NTK moved with the test rise (lead {:.1f} decades{})", without_negative_zero(lead, 1),
                       early.empty() ? "" : ", by " + early);
    else
      v += "; NTK moved " + relation(lead, rules, "", "the test rise") + (early.empty() ? "" : " (" + early + ")");
  }
  const LayerOnsets* output = output_layer(r);
  if (output) {
    const char* verb = output->capacity.upwards ? "rose" : "fell";
    if (!output->capacity.moved)
      v += "; output-layer capacity did not change";
    else if (output->lag_decades)
      v += fmt::format("; output-layer capacity {} {}", verb,
                       relation(-*output->lag_decades, rules,
                                fmt::format("with it (lag {:.1f} decades)", without_negative_zero(*output->lag_decades, 1)),
                                "the test rise"));
  }
  return v;
}

nlohmann::ordered_json optional_json(const std::optional<double>& x) {
  return x ? nlohmann::ordered_json(*x) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json rise_json(const Rise& rise) {
  return {{"start", rise.start_value}, {"final", rise.final_value}, {"moved", rise.moved},
          {"direction", rise.upwards ? "up" : "down"}, {"t10", optional_json(rise.t10)},
          {"t50", optional_json(rise.t50)}, {"t90", optional_json(rise.t90)}};
}

// A measure as summary.json has it: its start and final values first (as before onsets were
// added), then its rise and lag.
nlohmann::ordered_json measure_json(const MeasureOnsets& m) {
  nlohmann::ordered_json j = rise_json(m.rise);
  j["lag_decades_after_test_t50"] = optional_json(m.lag_decades);
  if (m.left_out_for_k) j["onsets_left_out"] = "the removed center structure's K varies after the fit (k_after_fit)";
  return j;
}

std::string cell(const std::optional<double>& x) { return x ? steps_text(*x) : "-"; }
std::string cell_decades(const std::optional<double>& x) {
  return x ? fmt::format("{:+.2f}", without_negative_zero(*x, 2)) : "-";
}

}  // namespace

RunReport analyze_run(const fs::path& dir, const ReportRules& rules) {
  RunReport r;
  r.dir = dir;
  GS_CHECK(fs::is_directory(dir), "{}: no such run directory", dir.string());
  const fs::path metrics_file = dir / "metrics.csv";
  GS_CHECK(fs::exists(metrics_file), "{}: no metrics.csv; is it a run directory written by grokscope train?",
           dir.string());
  read_run_info(r);
  const CsvTable metrics = read_csv(metrics_file);
  r.notes.insert(r.notes.end(), metrics.notes.begin(), metrics.notes.end());
  const Series train = series_of(metrics, "train_accuracy");
  const Series test = series_of(metrics, "test_accuracy");
  GS_CHECK(!train.empty() && !test.empty(), "{}: no rows with accuracies yet; has the run logged a step?",
           metrics_file.string());
  r.last_step = std::max(train.step.back(), test.step.back());
  r.best_train_accuracy = *std::max_element(train.value.begin(), train.value.end());
  r.t_fit = first_crossing(train, rules.fit_accuracy, true);
  const double from = r.t_fit ? *r.t_fit : test.step.front();
  r.test = rise_after(test, from, rules.min_accuracy_change);
  r.test_from_start = rise_after(test, test.step.front(), rules.min_accuracy_change);
  if (!r.t_fit) r.test = Rise{};
  if (test.size() == 1) r.notes.push_back("one logged step only: no rise can be measured");
  analyze_ntk(r, rules);
  analyze_geometry(r, rules, from);
  r.verdict = verdict_of(r, rules);
  return r;
}

nlohmann::ordered_json report_json(const RunReport& r, const ReportRules& rules) {
  nlohmann::ordered_json j;
  j["run"] = r.dir.string();
  j["recipe"] = r.recipe;
  j["dataset"] = r.dataset;
  j["model"] = r.model;
  j["status"] = r.status;
  j["last_step"] = r.last_step;
  j["interpolation"] = "onsets are interpolated linearly in log10(step) between logged steps (in step from step 0)";
  j["rules"] = {{"t_fit", fmt::format("first step with train accuracy >= {}", rules.fit_accuracy)},
                {"rise", "first steps at which a curve covered 10/50/90% of its way from its value at t_fit to its final value"},
                {"ntk", fmt::format("first step at 50% of the maximum distance to init; first step above {}; first step at "
                                    "50% of the distance at test t_50", rules.ntk_absolute)},
                {"together", fmt::format("events less than {} decades apart", rules.same_time_decades)},
                {"no_delay", fmt::format("test t_50 <= {} * t_fit", rules.no_delay_factor)},
                {"ntk_absolute", rules.ntk_absolute},  // the "above" threshold as a number, for plots
                {"same_time_decades", rules.same_time_decades}};
  j["t_fit"] = optional_json(r.t_fit);
  j["best_train_accuracy"] = r.best_train_accuracy;
  j["test_accuracy"] = rise_json(r.test);
  j["test_accuracy_from_start"] = rise_json(r.test_from_start);
  j["delay_steps"] = delay_decades(r) ? nlohmann::ordered_json(*rise_t50(r) - *r.t_fit) : nlohmann::ordered_json(nullptr);
  j["delay_decades"] = optional_json(delay_decades(r));
  auto ntk = nlohmann::ordered_json::object();
  for (const auto& n : r.ntk_sets)
    ntk[n.probe_set] = {{"max_distance_to_init", n.max_distance},
                        {"t_half_max", optional_json(n.t_half_max)},
                        {"t_above_absolute", optional_json(n.t_absolute)},
                        {"lead_decades_over_test_t50", optional_json(n.lead_decades)},
                        {"lead_steps_over_test_t50", optional_json(n.lead_steps)},
                        {"t_half_of_distance_at_test_t50", optional_json(n.t_half_at_rise)},
                        {"lead_decades_at_test_t50", optional_json(n.lead_at_rise_decades)}};
  j["ntk"] = ntk;
  auto layers = nlohmann::ordered_json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"layer", l.layer},
                      {"capacity", rise_json(l.capacity)},
                      {"lag_decades_after_test_t50", optional_json(l.lag_decades)},
                      {"lag_steps_after_test_t50", optional_json(l.lag_steps)},
                      {"radius", measure_json(l.radius)},
                      {"dimension", measure_json(l.dimension)},
                      {"center_correlation", measure_json(l.center_correlation)},
                      {"k_after_fit", {{"min", l.k_min}, {"max", l.k_max}}}});
  j["layers"] = layers;
  j["notes"] = r.notes;
  j["verdict"] = r.verdict;
  return j;
}

std::vector<std::string> run_labels(const std::vector<RunReport>& runs) {
  std::vector<std::vector<std::string>> parts;  // each directory's components, the last first
  std::size_t longest = 0;
  for (const auto& r : runs) {
    fs::path p = fs::absolute(r.dir).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();  // "runs/a/" is "runs/a"
    auto& names = parts.emplace_back();
    for (; p.has_relative_path(); p = p.parent_path()) names.push_back(p.filename().string());
    longest = std::max(longest, names.size());
  }
  for (std::size_t k = 1; k <= longest; ++k) {
    std::vector<std::string> labels;
    for (const auto& names : parts) {
      std::string label;
      for (std::size_t i = std::min(k, names.size()); i-- > 0;) label.append(label.empty() ? "" : "/").append(names[i]);
      labels.push_back(label);
    }
    auto sorted = labels;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end()) return labels;
  }
  std::vector<std::string> labels;  // the same directory twice: its whole path, twice
  for (const auto& r : runs) labels.push_back(r.dir.string());
  return labels;
}

namespace {

// How one measure of the output layer moved: its lag after the test rise and its direction.
std::string measure_cell(const MeasureOnsets& m) {
  if (m.left_out_for_k) return "K varies";
  if (!m.rise.moved) return "held";
  if (!m.lag_decades) return m.rise.upwards ? "up" : "down";
  return fmt::format("{:+.2f} {}", without_negative_zero(*m.lag_decades, 2), m.rise.upwards ? "up" : "down");
}

// The output layer's geometry, a row per run: where each measure's midpoint sits relative to the
// test rise's, and the K it was measured with. Empty when no run has an output layer.
std::string output_geometry_table(const std::vector<RunReport>& runs, const std::vector<std::string>& labels) {
  std::string out;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const LayerOnsets* o = output_layer(runs[i]);
    if (!o) continue;
    if (out.empty())
      out = fmt::format("output layer after the fit: each measure's t_50 in decades after test t_50, and its direction\n"
                        "{:<28} {:>11} {:>11} {:>11} {:>11} {:>5}\n",
                        "run", "capacity", "radius", "dimension", "center_corr", "K");
    const MeasureOnsets capacity{o->capacity, o->lag_decades};
    std::string name = labels[i];
    if (name.size() > 28) name = name.substr(0, 27) + "~";
    out += fmt::format("{:<28} {:>11} {:>11} {:>11} {:>11} {:>5}\n", name, measure_cell(capacity),
                       measure_cell(o->radius), measure_cell(o->dimension), measure_cell(o->center_correlation),
                       o->k_varies() ? fmt::format("{}-{}", o->k_min, o->k_max) : std::to_string(o->k_min));
  }
  return out;
}

}  // namespace

std::string report_table(const std::vector<RunReport>& runs) {
  std::string out = fmt::format("{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}\n", "run", "t_fit",
                                "t_10", "t_50", "t_90", "ntk_50%", "ntk>0.1", "cap_50%", "ntk_lead", "cap_lag");
  const std::vector<std::string> labels = run_labels(runs);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunReport& r = runs[i];
    const LayerOnsets* output = output_layer(r);
    std::string name = labels[i];
    if (name.size() > 28) name = name.substr(0, 27) + "~";
    out += fmt::format("{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}\n", name, cell(r.t_fit),
                       cell(rise_t50(r) ? r.test.t10 : std::nullopt), cell(rise_t50(r)),
                       cell(rise_t50(r) ? r.test.t90 : std::nullopt),
                       r.ntk ? cell(r.ntk->t_half_max) : "-", r.ntk ? cell(r.ntk->t_absolute) : "-",
                       output ? cell(output->capacity.t50) : "-", r.ntk ? cell_decades(r.ntk->lead_decades) : "-",
                       output ? cell_decades(output->lag_decades) : "-");
  }
  out += "(steps interpolated in log-step between logged steps; ntk_lead and cap_lag in decades relative to t_50)\n";
  out += output_geometry_table(runs, labels);
  for (const auto& r : runs) out += fmt::format("{}: {}\n", r.dir.string(), r.verdict);
  return out;
}

std::vector<std::string> comparability_warnings(const std::vector<RunReport>& runs) {
  std::vector<std::string> out;
  if (runs.size() < 2) return out;
  const RunReport& first = runs.front();
  for (std::size_t i = 1; i < runs.size(); ++i) {
    const RunReport& r = runs[i];
    if (r.dataset != first.dataset)
      out.push_back(fmt::format("{} trains on {} but {} on {}: its curves are not comparable with the others'",
                                r.dir.string(), r.dataset.empty() ? "an unknown dataset" : r.dataset,
                                first.dir.string(), first.dataset.empty() ? "an unknown dataset" : first.dataset));
    else if (r.model != first.model)
      out.push_back(fmt::format("{} is a {} but {} a {}: layer-by-layer geometry is not comparable",
                                r.dir.string(), r.model, first.dir.string(), first.model));
  }
  return out;
}

}  // namespace gs::experiments
