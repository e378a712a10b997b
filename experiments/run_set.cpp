#include "experiments/run_set.h"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace gs::experiments {

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
  std::vector<const std::map<std::string, std::string>*> known;  // runs without a recipe tell nothing
  for (const auto& m : values)
    if (!m.empty()) known.push_back(&m);
  if (known.empty()) return out;
  for (const auto& key : keys) {
    const auto value_in = [&](const std::map<std::string, std::string>* m) {
      auto it = m->find(key);
      return it == m->end() ? std::string("\x01 missing") : it->second;
    };
    const std::string first = value_in(known.front());
    if (std::any_of(known.begin(), known.end(), [&](const auto* m) { return value_in(m) != first; })) out.push_back(key);
  }
  return out;
}

std::vector<std::string> differing_recipe_keys(const std::vector<RunReport>& runs) {
  return read_run_recipes(runs).differing();
}

std::vector<std::string> layers_besides_output(const std::vector<RunReport>& runs) {
  std::vector<std::string> layers;
  for (const auto& r : runs)
    for (const auto& l : r.layers)
      if (l.layer != "output" && std::find(layers.begin(), layers.end(), l.layer) == layers.end()) layers.push_back(l.layer);
  return layers;
}

std::string Condition::label() const {
  if (keys.empty()) return recipe.empty() ? std::string("runs") : recipe;
  std::string text;
  for (const auto& [key, value] : keys) {
    const auto dot = key.rfind('.');
    text.append(text.empty() ? "" : " ").append(dot == std::string::npos ? key : key.substr(dot + 1)).append("=").append(value);
  }
  return text;
}

std::vector<Condition> conditions_of(const std::vector<RunReport>& runs, const RunRecipes& recipes) {
  std::vector<Condition> out;
  std::vector<std::map<std::string, std::string>> without_seed;  // each condition's recipe
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& values = recipes.values[i];
    if (values.empty()) continue;
    auto recipe = values;
    recipe.erase(seed_key);
    auto it = std::find(without_seed.begin(), without_seed.end(), recipe);
    if (it == without_seed.end()) {
      without_seed.push_back(std::move(recipe));
      out.emplace_back().recipe = runs[i].recipe;
      it = without_seed.end() - 1;
    }
    Condition& c = out[static_cast<std::size_t>(it - without_seed.begin())];
    c.runs.push_back(i);
    const auto seed = values.find(seed_key);
    c.seeds.push_back(seed == values.end() ? std::string("?") : seed->second);
  }
  // The settings that differ name the conditions; a recipe's name and description, which differ
  // whenever the recipe files do, only where no setting does.
  const std::vector<std::string> differing = recipes.differing();
  std::vector<std::string> keys, names;
  for (const auto& key : differing) {
    if (key == seed_key) continue;
    (key == "name" || key == "description" ? names : keys).push_back(key);
  }
  if (keys.empty() && !names.empty())
    keys.push_back(std::find(names.begin(), names.end(), "name") != names.end() ? "name" : names.front());
  for (std::size_t k = 0; k < out.size(); ++k)
    for (const auto& key : keys) {
      const auto it = without_seed[k].find(key);
      out[k].keys.emplace_back(key, it == without_seed[k].end() ? std::string() : it->second);
    }
  return out;
}

}  // namespace gs::experiments
