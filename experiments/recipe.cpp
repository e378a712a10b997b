#include "experiments/recipe.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "data/dataset.h"
#include "engine/error.h"
#include "engine/io/files.h"
#include "engine/probe/geometry.h"

namespace gs::experiments {

namespace {

// Nodes that came from --set: toml++ does not keep a copied node's source, so they are noted here.
thread_local std::map<const toml::node*, std::string> override_origins;

std::string where(const toml::node& n) {
  if (auto it = override_origins.find(&n); it != override_origins.end()) return it->second + ": ";
  const auto& s = n.source();
  if (!s.path) return "";
  return fmt::format("{}:{}:{}: ", *s.path, s.begin.line, s.begin.column);
}

// Reads one table of the recipe, remembering which keys it consumed so that the rest can be
// reported as unknown.
class Section {
 public:
  Section(const toml::table& root, const std::string& name, const std::string& origin) : name_(name), origin_(origin) {
    if (const toml::node* n = root.get(name)) {
      table_ = n->as_table();
      GS_CHECK(table_ != nullptr, "{}[{}] must be a table", where(*n), name);
    }
  }

  template <class T>
  void read(const char* key, T& value) {
    allowed_.push_back(key);
    if (!table_) return;
    const toml::node* n = table_->get(key);
    if (!n) return;
    assign(*n, key, value);
  }

  void one_of(const char* key, const std::string& value, std::initializer_list<const char*> choices) const {
    for (auto c : choices)
      if (value == c) return;
    fail("{}{}.{} = \"{}\" is not allowed; choose one of: {}", location(key), name_, key, value, fmt::join(choices, ", "));
  }

  void require(bool ok, const char* key, const std::string& what) const {
    GS_CHECK(ok, "{}{}.{} {}", location(key), name_, key, what);
  }

  void finish() const {
    if (!table_) return;
    for (auto&& [k, v] : *table_) {
      const std::string key(k.str());
      if (std::find(allowed_.begin(), allowed_.end(), key) == allowed_.end())
        fail("{}unknown key '{}' in [{}]; the keys of [{}] are: {}", where(v), key, name_, name_, fmt::join(allowed_, ", "));
    }
  }

 private:
  std::string location(const char* key) const {
    if (table_)
      if (const toml::node* n = table_->get(key)) return where(*n);
    return origin_ + ": ";
  }

  void type_error(const toml::node& n, const char* key, const char* want) const {
    fail("{}{}.{} must be {}, got {}", where(n), name_, key, want, type_name(n));
  }

  static const char* type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a floating-point number";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::array: return "an array";
      case toml::node_type::table: return "a table";
      default: return "a date or time";
    }
  }

  void assign(const toml::node& n, const char* key, std::string& v) const {
    if (!n.is_string()) type_error(n, key, "a string");
    v = n.as_string()->get();
  }
  void assign(const toml::node& n, const char* key, bool& v) const {
    if (!n.is_boolean()) type_error(n, key, "true or false");
    v = n.as_boolean()->get();
  }
  void assign(const toml::node& n, const char* key, double& v) const {
    if (n.is_floating_point())
      v = n.as_floating_point()->get();
    else if (n.is_integer())
      v = static_cast<double>(n.as_integer()->get());
    else
      type_error(n, key, "a number");
    if (!std::isfinite(v)) fail("{}{}.{} must be finite", where(n), name_, key);
  }
  void assign(const toml::node& n, const char* key, std::int64_t& v) const {
    if (!n.is_integer()) type_error(n, key, "an integer");
    v = n.as_integer()->get();
  }
  void assign(const toml::node& n, const char* key, std::uint64_t& v) const {
    if (!n.is_integer()) type_error(n, key, "a non-negative integer");
    if (n.as_integer()->get() < 0)
      fail("{}{}.{} must be a non-negative integer, got {}", where(n), name_, key, n.as_integer()->get());
    v = static_cast<std::uint64_t>(n.as_integer()->get());
  }
  void assign(const toml::node& n, const char* key, std::vector<std::int64_t>& v) const {
    const toml::array* a = n.as_array();
    if (!a) type_error(n, key, "an array of integers");
    v.clear();
    for (const auto& e : *a) {
      if (!e.is_integer()) type_error(e, key, "an array of integers");
      v.push_back(e.as_integer()->get());
    }
  }

  const toml::table* table_ = nullptr;
  std::string name_, origin_;
  std::vector<std::string> allowed_;
};

void apply_override(toml::table& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  GS_CHECK(eq != std::string::npos && eq > 0, "--set {}: expected section.key=value", assignment);
  const std::string path = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  const auto dot = path.find('.');
  GS_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < path.size(),
           "--set {}: the key must be section.key (e.g. train.steps=2000)", assignment);
  const std::string section = path.substr(0, dot), key = path.substr(dot + 1);
  const std::string origin = "--set " + path;
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value, origin);
  } catch (const toml::parse_error&) {
    parsed = toml::parse("v = \"" + value + "\"", origin);  // a bare word: a string
  }
  toml::node* existing = root.get(section);
  if (!existing) {
    root.insert(section, toml::table{});
    existing = root.get(section);
  }
  GS_CHECK(existing->is_table(), "--set {}: [{}] is not a table in the recipe", assignment, section);
  existing->as_table()->insert_or_assign(key, *parsed.get("v"));
  override_origins[existing->as_table()->get(key)] = origin;
}

void validate(const Recipe& r, const toml::table& root, const std::string& origin) {
  // Each message starts with the key it is about: the error points at that key's line, or at
  // its --set, and at the recipe as a whole where the key was left at its default.
  auto bad = [&](const std::string& what) {
    const std::string key = what.substr(0, what.find_first_of(" ="));
    const toml::node_view<const toml::node> node = root.at_path(key);
    const std::string at = node ? where(*node.node()) : "";
    fail("{}{}", at.empty() ? origin + ": " : at, what);
  };
  const auto known = data::known_datasets();
  if (std::find(known.begin(), known.end(), r.data.dataset) == known.end())
    bad(fmt::format("data.dataset = \"{}\" is not known; choose one of: {}", r.data.dataset, fmt::join(known, ", ")));
  if (r.data.train_size < 1) bad(fmt::format("data.train_size must be at least 1, got {}", r.data.train_size));
  if (r.data.test_size < 0) bad(fmt::format("data.test_size must be 0 (all) or positive, got {}", r.data.test_size));
  if (r.model.kind == "mlp") {
    if (r.model.widths.size() < 2) bad("model.widths needs at least an input and an output width");
    for (auto w : r.model.widths)
      if (w < 1) bad(fmt::format("model.widths must all be positive, got {}", fmt::join(r.model.widths, ", ")));
  }
  if (!(r.model.init_scale > 0)) bad(fmt::format("model.init_scale must be positive, got {}", r.model.init_scale));
  if (!(r.model.output_scale > 0)) bad(fmt::format("model.output_scale must be positive, got {}", r.model.output_scale));
  if (!(r.optimizer.lr > 0)) bad(fmt::format("optimizer.lr must be positive, got {}", r.optimizer.lr));
  if (r.optimizer.weight_decay < 0) bad(fmt::format("optimizer.weight_decay must be ≥ 0, got {}", r.optimizer.weight_decay));
  if (r.optimizer.beta1 < 0 || r.optimizer.beta1 >= 1 || r.optimizer.beta2 < 0 || r.optimizer.beta2 >= 1)
    bad("optimizer.beta1 and optimizer.beta2 must be in [0, 1)");
  if (r.optimizer.eps < 0) bad("optimizer.eps must be ≥ 0");
  if (r.optimizer.momentum < 0) bad("optimizer.momentum must be ≥ 0");
  if (r.train.batch_size < 1) bad(fmt::format("train.batch_size must be at least 1, got {}", r.train.batch_size));
  if (r.train.batch_size > r.data.train_size)
    bad(fmt::format("train.batch_size {} exceeds data.train_size {}", r.train.batch_size, r.data.train_size));
  if (r.train.steps < 1) bad(fmt::format("train.steps must be at least 1, got {}", r.train.steps));
  if (r.schedule.metric_points < 1) bad("schedule.metric_points must be at least 1");
  if (r.schedule.metric_every < 1) bad("schedule.metric_every must be at least 1");
  if (r.schedule.probe_points < 1) bad("schedule.probe_points must be at least 1");
  for (auto s : r.schedule.probe_steps)
    if (s < 0 || s > r.train.steps)
      bad(fmt::format("schedule.probe_steps holds {}, outside 0..{} (train.steps)", s, r.train.steps));
  if (r.probe.train_size < 1 || r.probe.test_size < 1) bad("probe.train_size and probe.test_size must be at least 1");
  if (r.probe.geometry_per_class < 2) bad("probe.geometry_per_class must be at least 2 (a manifold needs 2 points)");
  if (r.probe.geometry_n_t < 2) bad("probe.geometry_n_t must be at least 2");
  if (r.probe.geometry_center_k < 0)
    bad(fmt::format("probe.geometry_center_k must be 0 (the K of least residual correlation, chosen at every step) or "
                    "the number of directions to remove at every step, got {}", r.probe.geometry_center_k));
  if (r.probe.geometry_center_k > 0 && !r.probe.geometry_center_structure)
    bad(fmt::format("probe.geometry_center_k = {} asks for a center structure that probe.geometry_center_structure = false "
                    "turns off; set one of them", r.probe.geometry_center_k));
  if (!(r.probe.kappa >= 0 && r.probe.kappa <= probe::max_kappa))
    bad(fmt::format("probe.kappa must be in [0, {}], got {}", probe::max_kappa, r.probe.kappa));
  if (r.probe.train_size > r.data.train_size)
    bad(fmt::format("probe.train_size {} exceeds data.train_size {}", r.probe.train_size, r.data.train_size));
}

}  // namespace

Recipe parse_recipe(const std::string& text, const std::string& origin, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    fail("{}:{}:{}: {}", origin, s.begin.line, s.begin.column, e.description());
  }
  override_origins.clear();
  for (const auto& o : overrides) apply_override(root, o);

  Recipe r;
  r.source = origin;
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    static const std::set<std::string> sections{"name", "description", "data", "model", "optimizer", "train", "schedule", "probe"};
    if (!sections.count(key))
      fail("{}unknown key '{}' at the top level; a recipe has name, description and the tables [data], [model], "
           "[optimizer], [train], [schedule], [probe]",
           where(v), key);
  }
  if (const toml::node* n = root.get("name")) {
    GS_CHECK(n->is_string(), "{}name must be a string", where(*n));
    r.name = n->as_string()->get();
  } else {
    r.name = std::filesystem::path(origin).stem().string();
  }
  if (const toml::node* n = root.get("description")) {
    GS_CHECK(n->is_string(), "{}description must be a string", where(*n));
    r.description = n->as_string()->get();
  }

  Section data(root, "data", origin);
  data.read("dataset", r.data.dataset);
  data.read("path", r.data.path);
  data.read("train_size", r.data.train_size);
  data.read("subset", r.data.subset);
  data.read("normalize", r.data.normalize);
  data.read("test_size", r.data.test_size);
  data.one_of("subset", r.data.subset, {"first", "random"});
  data.one_of("normalize", r.data.normalize, {"unit", "standard"});
  data.finish();

  Section model(root, "model", origin);
  model.read("kind", r.model.kind);
  model.read("widths", r.model.widths);
  model.read("activation", r.model.activation);
  model.read("init_scale", r.model.init_scale);
  model.read("output_scale", r.model.output_scale);
  model.one_of("kind", r.model.kind, {"mlp", "cnn"});
  model.one_of("activation", r.model.activation, {"relu", "tanh", "gelu", "sigmoid"});
  model.finish();

  Section opt(root, "optimizer", origin);
  opt.read("name", r.optimizer.name);
  opt.read("lr", r.optimizer.lr);
  opt.read("weight_decay", r.optimizer.weight_decay);
  opt.read("beta1", r.optimizer.beta1);
  opt.read("beta2", r.optimizer.beta2);
  opt.read("eps", r.optimizer.eps);
  opt.read("momentum", r.optimizer.momentum);
  opt.read("nesterov", r.optimizer.nesterov);
  opt.one_of("name", r.optimizer.name, {"adamw", "adam", "sgd"});
  opt.finish();

  Section train(root, "train", origin);
  train.read("loss", r.train.loss);
  train.read("batch_size", r.train.batch_size);
  train.read("steps", r.train.steps);
  train.read("drop_last", r.train.drop_last);
  train.read("seed", r.train.seed);
  train.one_of("loss", r.train.loss, {"mse", "ce"});
  train.finish();

  Section sched(root, "schedule", origin);
  sched.read("metrics", r.schedule.metrics);
  sched.read("metric_points", r.schedule.metric_points);
  sched.read("metric_every", r.schedule.metric_every);
  sched.read("probe_points", r.schedule.probe_points);
  sched.read("probe_steps", r.schedule.probe_steps);
  sched.one_of("metrics", r.schedule.metrics, {"study", "every"});
  sched.finish();

  Section probe(root, "probe", origin);
  probe.read("train_size", r.probe.train_size);
  probe.read("test_size", r.probe.test_size);
  probe.read("ntk", r.probe.ntk);
  probe.read("save_kernels", r.probe.save_kernels);
  probe.read("geometry", r.probe.geometry);
  probe.read("geometry_per_class", r.probe.geometry_per_class);
  probe.read("geometry_n_t", r.probe.geometry_n_t);
  probe.read("geometry_center_structure", r.probe.geometry_center_structure);
  probe.read("geometry_center_k", r.probe.geometry_center_k);
  probe.read("kappa", r.probe.kappa);
  probe.finish();

  validate(r, root, origin);
  return r;
}

Recipe load_recipe(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  GS_CHECK(std::filesystem::exists(path), "{}: no such recipe; the shipped ones are in experiments/*.toml", path.string());
  auto bytes = io::read_file(path);
  return parse_recipe(std::string(bytes.begin(), bytes.end()), path.string(), overrides);
}

namespace {

// toml++ writes some doubles with 17 significant digits ("beta1 = 0.90000000000000002"). Each
// `key = <float>` line is rewritten with the shortest digits that read back as the same double
// (fmt's "{}"), kept a TOML float by a ".0" where those digits have no point or exponent.
std::string with_shortest_floats(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    const std::size_t eq = line.find(" = ");
    if (eq != std::string::npos) {
      const std::string value = line.substr(eq + 3);
      const bool number_chars = !value.empty() && value.find_first_not_of("0123456789.eE+-") == std::string::npos;
      if (number_chars && value.find_first_of(".eE") != std::string::npos) {
        char* end = nullptr;
        const double d = std::strtod(value.c_str(), &end);
        if (end == value.c_str() + value.size() && std::isfinite(d)) {
          std::string shortest = fmt::format("{}", d);
          if (shortest.find_first_of(".e") == std::string::npos) shortest += ".0";
          line = line.substr(0, eq + 3) + shortest;
        }
      }
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string Recipe::to_toml() const {
  auto ints = [](const std::vector<std::int64_t>& v) {
    toml::array a;
    for (auto x : v) a.push_back(x);
    return a;
  };
  toml::table t{
      {"name", name},
      {"description", description},
      {"data", toml::table{{"dataset", data.dataset},
                           {"path", data.path},
                           {"train_size", data.train_size},
                           {"subset", data.subset},
                           {"normalize", data.normalize},
                           {"test_size", data.test_size}}},
      {"model", toml::table{{"kind", model.kind},
                            {"widths", ints(model.widths)},
                            {"activation", model.activation},
                            {"init_scale", model.init_scale},
                            {"output_scale", model.output_scale}}},
      {"optimizer", toml::table{{"name", optimizer.name},
                                {"lr", optimizer.lr},
                                {"weight_decay", optimizer.weight_decay},
                                {"beta1", optimizer.beta1},
                                {"beta2", optimizer.beta2},
                                {"eps", optimizer.eps},
                                {"momentum", optimizer.momentum},
                                {"nesterov", optimizer.nesterov}}},
      {"train", toml::table{{"loss", train.loss},
                            {"batch_size", train.batch_size},
                            {"steps", train.steps},
                            {"drop_last", train.drop_last},
                            {"seed", static_cast<std::int64_t>(train.seed)}}},
      {"schedule", toml::table{{"metrics", schedule.metrics},
                               {"metric_points", schedule.metric_points},
                               {"metric_every", schedule.metric_every},
                               {"probe_points", schedule.probe_points},
                               {"probe_steps", ints(schedule.probe_steps)}}},
      {"probe", toml::table{{"train_size", probe.train_size}, {"test_size", probe.test_size}, {"ntk", probe.ntk},
                            {"save_kernels", probe.save_kernels}, {"geometry", probe.geometry},
                            {"geometry_per_class", probe.geometry_per_class}, {"geometry_n_t", probe.geometry_n_t},
                            {"geometry_center_structure", probe.geometry_center_structure},
                            {"geometry_center_k", probe.geometry_center_k}, {"kappa", probe.kappa}}},
  };
  std::ostringstream out;
  out << t << "\n";
  return with_shortest_floats(out.str());
}

}  // namespace gs::experiments
