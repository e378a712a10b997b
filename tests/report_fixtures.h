#pragma once
// Synthetic run directories for the report's tests: metrics.csv, ntk.csv and geometry.csv drawn
// from curves whose onsets are known in closed form, with a run.json and a recipe.toml.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace gs::test {

using Curve = std::function<double(double)>;

inline double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
inline double logit(double q) { return std::log(q / (1 - q)); }
// A rise from a0 to a1 centred at 10^centre steps, `width` decades wide.
inline Curve log_sigmoid(double a0, double a1, double centre, double width) {
  return [=](double t) { return a0 + (a1 - a0) * sigmoid((std::log10(std::max(t, 1e-9)) - centre) / width); };
}
inline Curve step_at(double before, double after, double at) {
  return [=](double t) { return t < at ? before : after; };
}
inline Curve constant(double v) {
  return [=](double) { return v; };
}

// 0, then `per_decade` log-spaced steps per decade up to 1e5, rounded and distinct.
inline std::vector<double> log_steps(int per_decade, double last = 1e5) {
  std::vector<double> s{0};
  for (int k = 0;; ++k) {
    const double t = std::round(std::pow(10.0, static_cast<double>(k) / per_decade));
    if (t > last) break;
    if (t > s.back()) s.push_back(t);
  }
  if (s.back() < last) s.push_back(last);
  return s;
}

struct SyntheticRun {
  std::vector<double> steps = log_steps(20);
  Curve train = step_at(0.1, 1.0, 100);
  Curve test = log_sigmoid(0.2, 0.9, 4, 0.15);
  double noise = 0;                  // uniform ± noise on the test accuracy
  std::vector<double> probe_steps = log_steps(8);
  std::optional<Curve> ntk;          // distance to init, same for both probe sets
  std::optional<Curve> capacity;     // the output layer's
  std::optional<Curve> hidden_capacity;  // layers.1's; without one it stays flat
  double capacity_se = 0.001;
  // The output layer's other measures (flat without them) and its removed structure's K.
  Curve radius = constant(1), dimension = constant(10), center_correlation = constant(0.2);
  std::function<int(double)> output_k = [](double) { return 1; };
  Curve hidden_radius = constant(1);  // layers.1's
  std::string status = "finished";
  std::string dataset = "mnist";
  std::string recipe_tables;  // more of recipe.toml, after [data]

  void write(const std::filesystem::path& dir) const {
    std::filesystem::create_directories(dir);
    std::mt19937_64 gen(7);
    std::uniform_real_distribution<double> u(-noise, noise);
    std::ofstream m(dir / "metrics.csv");
    m << "step,epoch,train_loss,train_accuracy,test_loss,test_accuracy,weight_norm,output_weight_norm,seconds\n";
    for (double t : steps)
      m << fmt::format("{},0,{},{},{},{},1,1,0\n", t, 1 - train(t), train(t), 1 - test(t), test(t) + u(gen));
    if (ntk) {
      std::ofstream n(dir / "ntk.csv");
      n << "step,probe_set,distance_to_init,distance_to_previous,trace_distance_to_init,alignment,"
           "output_distance_to_init,rest_distance_to_init,share_layers.1,share_layers.3\n";
      double previous = 0;
      for (std::size_t i = 0; i < probe_steps.size(); ++i) {
        const double t = probe_steps[i], d = (*ntk)(t);
        for (const char* set : {"train", "test"})
          n << fmt::format("{},{},{},{},0,0.5,0,0,0.5,0.5\n", t, set, d, i == 0 ? std::string("nan")
                                                                                : fmt::format("{}", std::abs(d - previous)));
        previous = d;
      }
    }
    if (capacity) {
      std::ofstream g(dir / "geometry.csv");
      g << "step,layer,capacity,capacity_se,radius,dimension,center_correlation,k\n";
      for (double t : probe_steps) {
        g << fmt::format("{},layers.1,{},{},{},30,0.25,1\n", t, hidden_capacity ? (*hidden_capacity)(t) : 0.07, capacity_se,
                         hidden_radius(t));
        g << fmt::format("{},output,{},{},{},{},{},{}\n", t, (*capacity)(t), capacity_se, radius(t), dimension(t),
                         center_correlation(t), output_k(t));
      }
    }
    std::ofstream(dir / "run.json") << fmt::format(R"({{"recipe": "synthetic", "status": "{}", "last_step": {}}})",
                                                   status, steps.back());
    std::ofstream(dir / "recipe.toml") << fmt::format("name = 'synthetic'\n[data]\ndataset = '{}'\n", dataset) << recipe_tables;
  }
};

// What a `grokscope report` command line printed (stdout and stderr), checked to have exited 0.
inline std::string report_output(const std::string& cmd) {
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = pclose(p);
  INFO(out);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  return out;
}

}  // namespace gs::test
