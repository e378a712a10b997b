#include "experiments/onsets_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "experiments/onsets.h"
#include "experiments/run_set.h"

namespace gs::experiments {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string number_field(const std::optional<double>& x) { return x ? fmt::format("{}", *x) : std::string(); }

std::string onsets_csv(const std::vector<RunReport>& runs) {
  const RunRecipes recipes = read_run_recipes(runs);
  const std::vector<std::string> keys = recipes.differing();
  const auto& maps = recipes.values;
  std::vector<std::string> condition(runs.size());  // empty for a run without a recipe
  for (const auto& c : conditions_of(runs, recipes))
    for (const std::size_t i : c.runs) condition[i] = c.label();
  // Every other layer's capacity midpoint and lag too, for the layers of any run, in their order.
  const std::vector<std::string> layers = layers_besides_output(runs);
  std::string out = "run,condition";
  for (const auto& key : keys) out.append(",").append(csv_field(key));  // (not "," + …: GCC 12's -Wrestrict misfires)
  out +=
      ",status,last_step,t_fit,test_t10,test_t50,test_t90,delay_decades,ntk_probe_set,ntk_t_half_max,ntk_t_above,"
      "ntk_lead_decades,ntk_t_half_at_rise,ntk_lead_at_rise_decades,capacity_t10,capacity_t50,capacity_t90,capacity_lag_decades,"
      "radius_t50,radius_lag_decades,dimension_t50,dimension_lag_decades,center_correlation_t50,center_correlation_lag_decades,"
      "k_min,k_max";
  for (const auto& layer : layers) {
    out.append(",").append(csv_field(layer + ":capacity_t50")).append(",").append(csv_field(layer + ":capacity_lag_decades"));
    for (const char* measure : {"radius", "dimension", "center_correlation"})
      out.append(",").append(csv_field(fmt::format("{}:{}_lag_decades", layer, measure)));
  }
  out += "\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunReport& r = runs[i];
    std::string row = csv_field(r.dir.string()).append(",").append(csv_field(condition[i]));
    for (const auto& key : keys) row.append(",").append(csv_field(maps[i].count(key) ? maps[i].at(key) : ""));
    const bool rose = rise_t50(r).has_value();
    row += fmt::format(",{},{},{},{},{},{},{}", csv_field(r.status), r.last_step, number_field(r.t_fit),
                       number_field(rose ? r.test.t10 : std::nullopt), number_field(rise_t50(r)),
                       number_field(rose ? r.test.t90 : std::nullopt), number_field(delay_decades(r)));
    // The probe set the verdict speaks of: the train set's when it was probed.
    if (r.ntk)
      row += fmt::format(",{},{},{},{},{},{}", csv_field(r.ntk->probe_set), number_field(r.ntk->t_half_max),
                         number_field(r.ntk->t_absolute), number_field(r.ntk->lead_decades),
                         number_field(r.ntk->t_half_at_rise), number_field(r.ntk->lead_at_rise_decades));
    else
      row += ",,,,,,";
    const auto moved = [](const LayerOnsets* l) { return l && l->capacity.moved; };
    if (const LayerOnsets* output = output_layer(r); moved(output)) {
      const Rise& c = output->capacity;
      row += fmt::format(",{},{},{},{}", number_field(c.t10), number_field(c.t50), number_field(c.t90),
                         number_field(output->lag_decades));
    } else {
      row += ",,,,";
    }
    if (const LayerOnsets* output = output_layer(r)) {
      for (const MeasureOnsets* m : {&output->radius, &output->dimension, &output->center_correlation})
        row += fmt::format(",{},{}", number_field(m->rise.t50), number_field(m->lag_decades));
      row += fmt::format(",{},{}", output->k_min, output->k_max);
    } else {
      row += ",,,,,,,,";
    }
    for (const auto& layer : layers) {
      const LayerOnsets* l = find_layer(r, layer);
      row += moved(l) ? fmt::format(",{},{}", number_field(l->capacity.t50), number_field(l->lag_decades)) : std::string(",,");
      for (const MeasureOnsets* m : {l ? &l->radius : nullptr, l ? &l->dimension : nullptr, l ? &l->center_correlation : nullptr})
        row.append(",").append(m ? number_field(m->lag_decades) : std::string());
    }
    out += row + "\n";
  }
  return out;
}

}  // namespace gs::experiments
