#include "experiments/replicates.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>

#include "experiments/onsets.h"
#include "experiments/onsets_table.h"

namespace gs::experiments {

Spread spread_of(std::vector<double> values) {
  Spread s;
  s.n = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  const std::size_t mid = values.size() / 2;
  s.median = values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
  return s;
}

namespace {

// Each quantity of the spread columns: its CSV name and where a run has it.
struct Quantity {
  const char* name;
  Spread ReplicateGroup::*spread;
  std::function<std::optional<double>(const RunReport&)> of;
};

const LayerOnsets* moved_output(const RunReport& r) {
  const LayerOnsets* l = output_layer(r);
  return l && l->capacity.moved ? l : nullptr;
}

const std::vector<Quantity>& quantities() {
  static const std::vector<Quantity> q = {
      {"t_fit", &ReplicateGroup::t_fit, [](const RunReport& r) { return r.t_fit; }},
      {"test_t50", &ReplicateGroup::test_t50, [](const RunReport& r) { return rise_t50(r); }},
      {"delay_decades", &ReplicateGroup::delay_decades, [](const RunReport& r) { return delay_decades(r); }},
      {"ntk_t_half_max", &ReplicateGroup::ntk_t_half_max,
       [](const RunReport& r) { return r.ntk ? r.ntk->t_half_max : std::nullopt; }},
      {"ntk_t_above", &ReplicateGroup::ntk_t_above,
       [](const RunReport& r) { return r.ntk ? r.ntk->t_absolute : std::nullopt; }},
      {"ntk_lead_decades", &ReplicateGroup::ntk_lead_decades,
       [](const RunReport& r) { return r.ntk ? r.ntk->lead_decades : std::nullopt; }},
      {"ntk_t_half_at_rise", &ReplicateGroup::ntk_t_half_at_rise,
       [](const RunReport& r) { return r.ntk ? r.ntk->t_half_at_rise : std::nullopt; }},
      {"ntk_lead_at_rise_decades", &ReplicateGroup::ntk_lead_at_rise_decades,
       [](const RunReport& r) { return r.ntk ? r.ntk->lead_at_rise_decades : std::nullopt; }},
      {"capacity_t50", &ReplicateGroup::capacity_t50,
       [](const RunReport& r) { return moved_output(r) ? moved_output(r)->capacity.t50 : std::nullopt; }},
      {"capacity_lag_decades", &ReplicateGroup::capacity_lag_decades,
       [](const RunReport& r) { return moved_output(r) ? moved_output(r)->lag_decades : std::nullopt; }},
      {"radius_lag_decades", &ReplicateGroup::radius_lag_decades,
       [](const RunReport& r) { return output_layer(r) ? output_layer(r)->radius.lag_decades : std::nullopt; }},
      {"dimension_lag_decades", &ReplicateGroup::dimension_lag_decades,
       [](const RunReport& r) { return output_layer(r) ? output_layer(r)->dimension.lag_decades : std::nullopt; }},
      {"center_correlation_lag_decades", &ReplicateGroup::center_correlation_lag_decades,
       [](const RunReport& r) { return output_layer(r) ? output_layer(r)->center_correlation.lag_decades : std::nullopt; }},
  };
  return q;
}

void summarize(ReplicateGroup& g, const std::vector<RunReport>& runs, const std::vector<std::string>& layers,
               const ReportRules& rules) {
  for (const std::size_t i : g.condition.runs) {
    const RunReport& r = runs[i];
    if (r.status != "finished") ++g.unfinished;
    if (r.t_fit) ++g.fit;
    if (rise_t50(r)) ++g.rose;
    if (delayed_rise(r, rules)) ++g.delayed;
    if (r.ntk && r.ntk->lead_decades) g.ntk.add(*r.ntk->lead_decades, rules);
    if (const LayerOnsets* l = moved_output(r); l && l->lag_decades) g.capacity.add(-*l->lag_decades, rules);
    if (const LayerOnsets* l = output_layer(r)) {
      if (l->radius.lag_decades) g.radius.add(-*l->radius.lag_decades, rules);
      if (l->dimension.lag_decades) g.dimension.add(-*l->dimension.lag_decades, rules);
      if (l->center_correlation.lag_decades) g.center_correlation.add(-*l->center_correlation.lag_decades, rules);
    }
  }
  for (const auto& q : quantities()) {
    std::vector<double> values;
    for (const std::size_t i : g.condition.runs)
      if (const auto x = q.of(runs[i])) values.push_back(*x);
    g.*q.spread = spread_of(std::move(values));
  }
  for (const auto& layer : layers) {
    std::vector<double> lags;
    for (const std::size_t i : g.condition.runs)
      if (const LayerOnsets* l = find_layer(runs[i], layer); l && l->capacity.moved && l->lag_decades)
        lags.push_back(*l->lag_decades);
    g.layer_lag_decades.emplace_back(layer, spread_of(std::move(lags)));
  }
}

std::string steps_cell(const Spread& s, std::size_t runs) {
  if (s.n == 0) return "-";
  if (runs == 1) return fmt::format("{:.0f}", s.median);
  std::string text = fmt::format("{:.0f} [{:.0f}, {:.0f}]", s.median, s.min, s.max);
  return s.n < runs ? text.append(fmt::format(" n={}", s.n)) : text;
}

std::string decades_cell(const Spread& s, std::size_t runs) {
  if (s.n == 0) return "-";
  const auto d = [](double x) { return without_negative_zero(x, 2); };  // +0.00, never -0.00
  if (runs == 1) return fmt::format("{:+.2f}", d(s.median));
  std::string text = fmt::format("{:+.2f} [{:+.2f}, {:+.2f}]", d(s.median), d(s.min), d(s.max));
  return s.n < runs ? text.append(fmt::format(" n={}", s.n)) : text;
}

std::string seeds_text(const ReplicateGroup& g) {
  std::string seeds;
  for (const auto& s : g.condition.seeds) seeds.append(seeds.empty() ? "" : " ").append(s);
  return seeds;
}

std::string timing_text(const TimingCounts& c) {
  if (c.before + c.with + c.after == 0) return "not measured";
  return fmt::format("before the rise in {}, with it in {}, after it in {}", c.before, c.with, c.after);
}

// The same for the output layer's other measures, shorter, and only those some run measured.
std::string measures_text(const ReplicateGroup& g) {
  std::string out;
  for (const auto& [name, c] : {std::pair<const char*, const TimingCounts&>{"radius", g.radius}, {"dimension", g.dimension},
                                {"center correlation", g.center_correlation}}) {
    if (c.before + c.with + c.after == 0) continue;
    out.append(out.empty() ? "; its " : ", ").append(fmt::format("{} {}/{}/{}", name, c.before, c.with, c.after));
  }
  return out.empty() ? out : out.append(" (before/with/after)");
}

}  // namespace

void TimingCounts::add(double lead_decades, const ReportRules& rules) {
  switch (timing_of(lead_decades, rules)) {
    case Timing::before: ++before; break;
    case Timing::with: ++with; break;
    case Timing::after: ++after; break;
  }
}

std::vector<ReplicateGroup> replicate_groups(const std::vector<RunReport>& runs, const ReportRules& rules) {
  std::vector<Condition> conditions = conditions_of(runs, read_run_recipes(runs));
  if (std::none_of(conditions.begin(), conditions.end(), [](const Condition& c) { return c.runs.size() > 1; })) return {};
  const std::vector<std::string> layers = layers_besides_output(runs);
  std::vector<ReplicateGroup> groups;
  for (auto& c : conditions) {
    ReplicateGroup& g = groups.emplace_back();
    g.condition = std::move(c);
    summarize(g, runs, layers, rules);
  }
  return groups;
}

std::string replicates_table(const std::vector<ReplicateGroup>& groups, const ReportRules& rules) {
  if (groups.empty()) return {};
  std::vector<std::vector<std::string>> rows = {
      {"condition", "runs", "delayed", "t_fit", "t_50", "ntk_lead", "ntk_lead@rise", "cap_lag"}};
  for (const auto& g : groups) {
    const std::size_t n = g.condition.runs.size();
    rows.push_back({g.condition.label(), fmt::format("{}", n), fmt::format("{}/{}", g.delayed, n), steps_cell(g.t_fit, n),
                    steps_cell(g.test_t50, n), decades_cell(g.ntk_lead_decades, n), decades_cell(g.ntk_lead_at_rise_decades, n),
                    decades_cell(g.capacity_lag_decades, n)});
  }
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out = fmt::format("replicates: runs whose recipes differ only in {}\n", seed_key);
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      // The label left-aligned, the counts right-aligned, the spreads left-aligned.
      if (c == 0 || c >= 3) line.append(row[c]).append(pad);
      else line.append(pad).append(row[c]);
      if (c + 1 < row.size()) line.append("  ");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.append(line).append("\n");
  }
  out += fmt::format("(median [min, max] over the runs that have the onset, n= where fewer than all; delayed: t_50 after "
                     "{}·t_fit; ntk_lead@rise: from the step at half of the kernel's distance at t_50)\n",
                     rules.no_delay_factor);
  for (const auto& g : groups) {
    const std::size_t n = g.condition.runs.size();
    if (n == 1) continue;  // its verdict above says it all
    out += fmt::format("{} ({} runs, seeds {}): fit in {} of {}, test accuracy rose after the fit in {} (delayed in {}); "
                       "NTK half-way: {}; output-layer capacity: {}{}",
                       g.condition.label(), n, seeds_text(g), g.fit, n, g.rose, g.delayed, timing_text(g.ntk),
                       timing_text(g.capacity), measures_text(g));
    if (g.unfinished) out += fmt::format("; {} not finished (onsets on what they logged)", g.unfinished);
    out += "\n";
  }
  return out;
}

std::string replicates_csv(const std::vector<ReplicateGroup>& groups) {
  if (groups.empty()) return {};
  std::string out = "condition,";
  for (const auto& [key, value] : groups.front().condition.keys) out.append(csv_field(key)).append(",");
  out += "runs,seeds,unfinished,fit,rose,delayed";
  for (const char* event : {"ntk", "capacity", "radius", "dimension", "center_correlation"})
    for (const char* timing : {"before", "with", "after"}) out.append(fmt::format(",{}_{}", event, timing));
  for (const auto& q : quantities())
    for (const char* part : {"n", "median", "min", "max"}) out.append(fmt::format(",{}_{}", q.name, part));
  for (const auto& [layer, spread] : groups.front().layer_lag_decades)
    for (const char* part : {"n", "median", "min", "max"})
      out.append(",").append(csv_field(fmt::format("{}:capacity_lag_decades_{}", layer, part)));
  out += "\n";
  for (const auto& g : groups) {
    std::string row = csv_field(g.condition.label()).append(",");
    for (const auto& [key, value] : g.condition.keys) row.append(csv_field(value)).append(",");
    row += fmt::format("{},{},{},{},{},{}", g.condition.runs.size(), csv_field(seeds_text(g)), g.unfinished, g.fit, g.rose,
                       g.delayed);
    for (const TimingCounts& c : {g.ntk, g.capacity, g.radius, g.dimension, g.center_correlation})
      row += fmt::format(",{},{},{}", c.before, c.with, c.after);
    const auto fields = [&](const Spread& s) {
      const auto field = [&](double x) { return s.n ? number_field(x) : std::string(); };
      row += fmt::format(",{},{},{},{}", s.n, field(s.median), field(s.min), field(s.max));
    };
    for (const auto& q : quantities()) fields(g.*q.spread);
    for (const auto& [layer, spread] : g.layer_lag_decades) fields(spread);
    out += row + "\n";
  }
  return out;
}

}  // namespace gs::experiments
