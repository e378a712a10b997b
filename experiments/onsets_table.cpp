#include "experiments/onsets_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <toml++/toml.h>

#include "experiments/onsets.h"

namespace gs::experiments {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string number_field(const std::optional<double>& x) { return x ? fmt::format("{}", *x) : std::string(); }

namespace {

// A recipe value for a table cell: strings unquoted, numbers in their shortest exact form (0.1,
// not TOML's 0.10000000000000001), arrays as [a, b].
std::string value_text(const toml::node& value) {
  if (const auto* s = value.as_string()) return s->get();
  if (const auto* d = value.as_floating_point()) return fmt::format("{}", d->get());
  if (const auto* i = value.as_integer()) return fmt::format("{}", i->get());
  if (const auto* b = value.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* a = value.as_array()) {
    std::string text = "[";
    for (std::size_t i = 0; i < a->size(); ++i) text.append(i ? ", " : "").append(value_text(*a->get(i)));
    return text + "]";
  }
  std::ostringstream text;  // dates and times, which no recipe has
  value.visit([&](const auto& v) { text << v; });
  return text.str();
}

}  // namespace

std::vector<std::pair<std::string, std::string>> recipe_values(const RunReport& run) {
  std::vector<std::pair<std::string, std::string>> out;
  toml::table recipe;
  try {
    recipe = toml::parse_file((run.dir / "recipe.toml").string());
  } catch (const std::exception&) {
    return out;  // analyze_run has said why in the run's notes
  }
  const auto add = [&](const std::string& key, const toml::node& value) { out.emplace_back(key, value_text(value)); };
  for (const auto& [key, node] : recipe) {
    if (const auto* section = node.as_table()) {
      for (const auto& [inner, value] : *section) add(std::string(key.str()).append(".").append(inner.str()), value);
    } else {
      add(std::string(key.str()), node);
    }
  }
  return out;
}

RunRecipes read_run_recipes(const std::vector<RunReport>& runs) {
  RunRecipes out;
  for (const auto& r : runs) {
    auto& m = out.values.emplace_back();
    for (auto& [key, value] : recipe_values(r)) {
      if (std::find(out.keys.begin(), out.keys.end(), key) == out.keys.end()) out.keys.push_back(key);
      m.emplace(key, value);
    }
  }
  return out;
}

std::vector<std::string> RunRecipes::differing() const {
  std::vector<std::string> out;
  if (values.empty()) return out;
  for (const auto& key : keys) {
    const auto value_in = [&](const std::map<std::string, std::string>& m) {
      auto it = m.find(key);
      return it == m.end() ? std::string("\x01 missing") : it->second;
    };
    const std::string first = value_in(values.front());
    if (std::any_of(values.begin(), values.end(), [&](const auto& m) { return value_in(m) != first; })) out.push_back(key);
  }
  return out;
}

std::vector<std::string> differing_recipe_keys(const std::vector<RunReport>& runs) {
  return read_run_recipes(runs).differing();
}

std::string onsets_csv(const std::vector<RunReport>& runs) {
  const RunRecipes recipes = read_run_recipes(runs);
  const std::vector<std::string> keys = recipes.differing();
  const auto& maps = recipes.values;
  // Every other layer's capacity midpoint and lag too, for the layers of any run, in their order.
  std::vector<std::string> layers;
  for (const auto& r : runs)
    for (const auto& l : r.layers)
      if (l.layer != "output" && std::find(layers.begin(), layers.end(), l.layer) == layers.end()) layers.push_back(l.layer);
  std::string out = "run";
  for (const auto& key : keys) out.append(",").append(csv_field(key));  // (not "," + …: GCC 12's -Wrestrict misfires)
  out +=
      ",status,last_step,t_fit,test_t10,test_t50,test_t90,delay_decades,ntk_probe_set,ntk_t_half_max,ntk_t_above,"
      "ntk_lead_decades,capacity_t10,capacity_t50,capacity_t90,capacity_lag_decades";
  for (const auto& layer : layers)
    out.append(",").append(csv_field(layer + ":capacity_t50")).append(",").append(csv_field(layer + ":capacity_lag_decades"));
  out += "\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunReport& r = runs[i];
    std::string row = csv_field(r.dir.string());
    for (const auto& key : keys) row.append(",").append(csv_field(maps[i].count(key) ? maps[i].at(key) : ""));
    const bool rose = rise_t50(r).has_value();
    const std::optional<double> delay =
        r.t_fit && rose ? std::optional<double>(decades_between(*r.t_fit, *rise_t50(r))) : std::nullopt;
    row += fmt::format(",{},{},{},{},{},{},{}", csv_field(r.status), r.last_step, number_field(r.t_fit),
                       number_field(rose ? r.test.t10 : std::nullopt), number_field(rise_t50(r)),
                       number_field(rose ? r.test.t90 : std::nullopt), number_field(delay));
    // The probe set the verdict speaks of: the train set's when it was probed.
    if (r.ntk)
      row += fmt::format(",{},{},{},{}", csv_field(r.ntk->probe_set), number_field(r.ntk->t_half_max),
                         number_field(r.ntk->t_absolute), number_field(r.ntk->lead_decades));
    else
      row += ",,,,";
    const auto moved = [](const LayerOnsets* l) { return l && l->capacity.moved; };
    if (const LayerOnsets* output = output_layer(r); moved(output)) {
      const Rise& c = output->capacity;
      row += fmt::format(",{},{},{},{}", number_field(c.t10), number_field(c.t50), number_field(c.t90),
                         number_field(output->lag_decades));
    } else {
      row += ",,,,";
    }
    for (const auto& layer : layers) {
      const LayerOnsets* l = find_layer(r, layer);
      row += moved(l) ? fmt::format(",{},{}", number_field(l->capacity.t50), number_field(l->lag_decades)) : std::string(",,");
    }
    out += row + "\n";
  }
  return out;
}

}  // namespace gs::experiments
