#include "experiments/onsets_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <toml++/toml.h>

namespace gs::experiments {

namespace {

// RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// A number as the report JSON holds it, or empty where it is null (an onset that did not happen).
std::string number_field(const nlohmann::ordered_json& j) {
  if (j.is_null()) return "";
  return fmt::format("{}", j.get<double>());
}

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

const nlohmann::ordered_json& at_or_null(const nlohmann::ordered_json& j, const char* key) {
  static const nlohmann::ordered_json null;
  return j.is_object() && j.contains(key) ? j.at(key) : null;
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

std::vector<std::string> differing_recipe_keys(const std::vector<RunReport>& runs) {
  std::vector<std::string> order;  // every key, in the order first met
  std::vector<std::map<std::string, std::string>> values;
  for (const auto& r : runs) {
    auto& v = values.emplace_back();
    for (auto& [key, value] : recipe_values(r)) {
      if (std::find(order.begin(), order.end(), key) == order.end()) order.push_back(key);
      v.emplace(key, value);
    }
  }
  std::vector<std::string> out;
  for (const auto& key : order) {
    const auto value_in = [&](const std::map<std::string, std::string>& v) {
      auto it = v.find(key);
      return it == v.end() ? std::string("\x01 missing") : it->second;
    };
    const std::string first = value_in(values.front());
    if (std::any_of(values.begin(), values.end(), [&](const auto& v) { return value_in(v) != first; })) out.push_back(key);
  }
  return out;
}

std::string onsets_csv(const std::vector<RunReport>& runs, const ReportRules& rules) {
  const std::vector<std::string> keys = differing_recipe_keys(runs);
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
  for (const auto& r : runs) {
    const auto j = report_json(r, rules);
    std::map<std::string, std::string> own;
    for (auto& [key, value] : recipe_values(r)) own.emplace(key, value);
    std::string row = csv_field(r.dir.string());
    for (const auto& key : keys) row.append(",").append(csv_field(own.count(key) ? own.at(key) : ""));
    const auto& test = j.at("test_accuracy");
    const bool rose = test.at("moved").get<bool>() && test.at("direction") == "up";
    const auto rise_field = [&](const char* t) { return rose ? number_field(test.at(t)) : std::string(); };
    row += fmt::format(",{},{},{},{},{},{},{}", csv_field(r.status), r.last_step, number_field(j.at("t_fit")),
                       rise_field("t10"), rise_field("t50"), rise_field("t90"), number_field(j.at("delay_decades")));
    // The probe set the verdict speaks of: the train set's when it was probed.
    const std::string set = r.ntk ? r.ntk->probe_set : "";
    const auto& ntk = at_or_null(j.at("ntk"), set.c_str());
    row += fmt::format(",{},{},{},{}", csv_field(set), number_field(at_or_null(ntk, "t_half_max")),
                       number_field(at_or_null(ntk, "t_above_absolute")),
                       number_field(at_or_null(ntk, "lead_decades_over_test_t50")));
    const auto layer_json = [&](const std::string& name) -> const nlohmann::ordered_json* {
      for (const auto& l : j.at("layers"))
        if (l.at("layer") == name) return &l;
      return nullptr;
    };
    const auto moved = [](const nlohmann::ordered_json* l) { return l && l->at("capacity").at("moved").get<bool>(); };
    if (const auto* output = layer_json("output"); moved(output)) {
      const auto& c = output->at("capacity");
      row += fmt::format(",{},{},{},{}", number_field(c.at("t10")), number_field(c.at("t50")), number_field(c.at("t90")),
                         number_field(output->at("lag_decades_after_test_t50")));
    } else {
      row += ",,,,";
    }
    for (const auto& layer : layers) {
      const auto* l = layer_json(layer);
      row += moved(l) ? fmt::format(",{},{}", number_field(l->at("capacity").at("t50")),
                                    number_field(l->at("lag_decades_after_test_t50")))
                      : std::string(",,");
    }
    out += row + "\n";
  }
  return out;
}

}  // namespace gs::experiments
