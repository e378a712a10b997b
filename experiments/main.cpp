// The grokscope command line.
//   grokscope train [RECIPE] [--out DIR] [--set section.key=value ...] [--device cpu|cuda] [--no-graph] [--tf32]
//   grokscope train --resume DIR [--device cpu|cuda] [--no-graph] [--tf32]
//   grokscope ntk --checkpoint A.safetensors [--against B.safetensors] [--recipe R] [--probe train|test] [--n N] [--inputs X.npy] [--json]
//   grokscope geometry --activations X.npy --labels Y.npy [--kappa K] [--n-t N] [--seed S]
//                      [--no-center-structure | --center-k K] [--device cpu|cuda] [--json]
//   grokscope probe RUN_DIR --out DIR [--set probe.KEY=VALUE ...] [--device cpu|cuda]
//   grokscope probe --resume DIR [--device cpu|cuda]
//   grokscope report RUN_DIR [RUN_DIR ...] [--out DIR] [--no-figures] [--json]
//   grokscope info
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <ctime>
#include <limits>
#include <type_traits>

#include "engine/io/npy.h"
#include "engine/probe/geometry.h"
#include <nlohmann/json.hpp>
#include "experiments/ntk_command.h"
#include "experiments/probe_command.h"
#include "experiments/probes.h"
#include "experiments/report_command.h"
#include "experiments/recipe.h"
#include "experiments/runner.h"
#include "kernels/backend.h"

namespace {

// experiments/default.toml, compiled in by CMake so that `grokscope train` needs no file.
constexpr const char* default_recipe =
#include "default_recipe.inc"
    ;

void add_probes(gs::experiments::Runner& runner) {
  for (auto& [name, hook] : gs::experiments::recipe_probes(runner.recipe())) runner.add_probe(name, std::move(hook));
}

int run_geometry(const std::string& x_path, const std::string& y_path, double kappa, std::int64_t n_t, std::uint64_t seed,
                 bool json, gs::probe::CenterRemoval removal, gs::Device device) {
  using gs::Error;
  if (device == gs::Device::cuda && !gs::kernels::cuda_available())
    throw Error(std::string("--device cuda: ") + gs::kernels::cuda_unavailable_reason() +
                "; run the geometry with --device cpu (the default) instead");
  gs::Tensor x = gs::io::load_npy(x_path), y = gs::io::load_npy(y_path);
  if (x.rank() != 2) throw Error(x_path + ": activations must be 2-D (samples × features), got " + x.shape().str());
  if (y.dtype() != gs::DType::i32 || y.rank() != 1)
    throw Error(y_path + ": labels must be a 1-D int32 array (numpy: y.astype(np.int32)), got " + y.describe());
  if (y.size(0) != x.size(0))
    throw Error(x_path + " has " + std::to_string(x.size(0)) + " samples but " + y_path + " has " + std::to_string(y.size(0)) +
                " labels; they must match");
  auto labels = y.to_int_vector();
  std::int32_t classes = 0;
  for (auto v : labels) {
    if (v < 0) throw Error(y_path + ": labels must be non-negative class indices, got " + std::to_string(v));
    classes = std::max(classes, v + 1);
  }
  auto g = gs::probe::analyze_layer(x.to_vector(), x.size(1), labels, classes, kappa, n_t, seed, removal, device);
  for (const auto& w : g.warnings) fmt::print(stderr, "grokscope: {}\n", w);
  nlohmann::ordered_json out{{"capacity", g.capacity},   {"capacity_se", g.capacity_se},
                             {"radius", g.radius},       {"dimension", g.dimension},
                             {"center_correlation", g.center_correlation}, {"K", g.k},
                             {"K_near_ties", g.k_near_ties}};
  nlohmann::json per_class = nlohmann::json::array();
  for (const auto& m : g.per_class)
    per_class.push_back({{"capacity", m.capacity}, {"capacity_se", m.capacity_se}, {"radius", m.radius}, {"dimension", m.dimension}});
  out["per_class"] = per_class;
  if (json) {
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("{} classes, {} samples, {} features, kappa {}, n_t {}\n", classes, x.size(0), x.size(1), kappa, n_t);
  fmt::print("  capacity {:.6g} ± {:.2g}   radius {:.6g}   dimension {:.6g}\n", g.capacity, g.capacity_se, g.radius, g.dimension);
  fmt::print("  center correlation {:.6g}, center structure removed: K = {}\n", g.center_correlation, g.k);
  return 0;
}

// CLI11's own number checks print their bounds to 300 digits and let NaN through. T: the
// option's type (a double, or std::int64_t for a whole number).
template <class T>
CLI::Validator number_in(T low, T high) {
  constexpr bool whole = std::is_integral_v<T>;
  const bool unbounded = high == std::numeric_limits<T>::max();  // said as "at least"
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        T v = 0;
        const char* end = text.data() + text.size();
        const auto parsed = std::from_chars(text.data(), end, v);
        if (parsed.ec != std::errc() || parsed.ptr != end)
          return fmt::format("expected a {}, got '{}'", whole ? "whole number" : "number", text);
        if (!(v >= low && v <= high))
          return unbounded ? fmt::format("must be at least {}, got {}", low, text)
                           : fmt::format("must be in [{}, {}], got {}", low, high, text);
        return "";
      },
      unbounded ? fmt::format("INTEGER ≥ {}", low) : fmt::format("{} in [{}, {}]", whole ? "INTEGER" : "NUMBER", low, high));
}

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

// The run's last words: where its time went and where to look next.
void print_done(const gs::experiments::Runner& runner, const std::string& dir) {
  fmt::print("grokscope: done in {}\n", runner.time_split().summary(runner.total_seconds()));
  fmt::print("grokscope: metrics in {0}/metrics.csv; `grokscope report {0}` for onsets and figures\n", dir);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"grokscope: train networks and watch their NTK and representational geometry"};
  app.require_subcommand(1);

  auto* info = app.add_subcommand("info", "what this build can run on");

  auto* train = app.add_subcommand("train", "train a recipe into a run directory");
  std::string recipe_path, out;
  std::vector<std::string> overrides;
  train->add_option("recipe", recipe_path, "recipe file (experiments/*.toml); default: the compiled-in experiments/default.toml");
  train->add_option("--out", out, "run directory (default: runs/<recipe name>-<time>)");
  train->add_option("--set", overrides, "override a recipe key, e.g. --set train.steps=2000 (repeatable)");
  std::string resume_dir;
  train->add_option("--resume", resume_dir, "continue the run in this directory where it stopped");
  bool quiet = false;
  train->add_flag("--quiet", quiet, "no progress output");
  std::string device = "cpu";
  train->add_option("--device", device,
                    "train on cpu or cuda; on cuda the NTK probe and the geometry probe's anchor solves run there too")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  bool no_graph = false;
  train->add_flag("--no-graph", no_graph,
                  "on cuda, run the training step kernel by kernel instead of replaying it as one CUDA graph");
  bool tf32 = false;
  train->add_flag("--tf32", tf32,
                  "on cuda, multiply the training step's dense layers and convolutions in TF32 on the tensor cores "
                  "(10-bit mantissas; evaluations and probes stay FP32)");

  auto* ntk = app.add_subcommand("ntk", "the NTK of a checkpoint, and its distance to another");
  std::string ntk_recipe;
  gs::experiments::NtkCommand ntk_cmd{gs::experiments::Recipe{}, {}, {}, "test", 0, {}, false};
  ntk->add_option("--recipe", ntk_recipe, "the recipe whose architecture and data the checkpoint belongs to (default: the compiled-in default)");
  ntk->add_option("--checkpoint", ntk_cmd.checkpoint, "a .safetensors checkpoint (grokscope's, or a PyTorch state_dict saved as safetensors)")->required();
  ntk->add_option("--against", ntk_cmd.against, "a second checkpoint: print the kernel distance between the two");
  ntk->add_option("--probe", ntk_cmd.probe_set, "which probe set: train or test")->check(CLI::IsMember({"train", "test"}));
  ntk->add_option("--n", ntk_cmd.n, "probe-set size (default: the recipe's)")->check(number_in<std::int64_t>(1, std::numeric_limits<std::int64_t>::max()));
  ntk->add_option("--inputs", ntk_cmd.inputs, "use these images (.npy, float32, n × features or n × C × H × W) instead");
  ntk->add_flag("--json", ntk_cmd.json, "print one JSON object");

  auto* geometry = app.add_subcommand("geometry", "manifold capacity, radius, dimension and center correlation of given activations");
  std::string geo_x, geo_y;
  double geo_kappa = 0;
  std::int64_t geo_nt = 200;
  std::uint64_t geo_seed = 0;
  bool geo_json = false, geo_keep_centers = false;
  geometry->add_option("--activations", geo_x, "samples × features, .npy, float32 or float64")->required();
  geometry->add_option("--labels", geo_y, "the class of every sample, .npy, int32")->required();
  geometry->add_option("--kappa", geo_kappa, "margin (default 0)")->check(number_in(0.0, gs::probe::max_kappa));
  geometry->add_option("--n-t", geo_nt, "Gaussian vectors per manifold (default 200)")->check(CLI::Range(2, 1000000));
  geometry->add_option("--seed", geo_seed, "seed of the Gaussian vectors and the center-structure restarts");
  geometry->add_flag("--json", geo_json, "print one JSON object");
  auto* no_centers =
      geometry->add_flag("--no-center-structure", geo_keep_centers, "skip step 2 (removing the centers' common structure; K = 0)");
  std::int64_t geo_center_k = 0;
  geometry->add_option("--center-k", geo_center_k,
                       "remove exactly this many directions of the centers' common structure (default: the K of least residual correlation)")
      ->check(number_in<std::int64_t>(1, std::numeric_limits<std::int64_t>::max()))
      ->excludes(no_centers);
  std::string geo_device = "cpu";
  geometry->add_option("--device", geo_device, "solve the manifolds' anchor problems on cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));

  auto* report = app.add_subcommand("report", "onsets, lags, verdicts and figures of finished (or running) runs");
  gs::experiments::ReportCommand report_cmd;
  std::vector<std::string> report_runs;
  std::string report_out;
  bool report_no_figures = false;
  report->add_option("runs", report_runs, "run directories written by grokscope train")->required();
  report->add_option("--out", report_out, "where several runs' onsets.csv, replicates.csv and figures go (default: their common parent)");
  report->add_flag("--no-figures", report_no_figures, "summary.json and the table only");
  report->add_flag("--json", report_cmd.json, "print the summaries as one JSON array instead of the table");

  auto* probe = app.add_subcommand("probe", "the probes again on a run's checkpoints, with other probe settings, into a directory of their own");
  gs::experiments::ProbeCommand probe_cmd;
  std::string probe_run, probe_out, probe_resume, probe_device = "cpu";
  auto* probe_run_option = probe->add_option("run", probe_run, "a run directory written by grokscope train");
  auto* probe_out_option =
      probe->add_option("--out", probe_out, "where the probes' CSVs go, with the recipe as probed and the run's metrics (not the run directory)");
  probe->add_option("--resume", probe_resume, "continue the stopped probe in this directory, with its settings")
      ->excludes(probe_run_option)
      ->excludes(probe_out_option);
  probe->add_option("--set", probe_cmd.overrides,
                    "change a probe setting, e.g. --set probe.kappa=0.5 or --set probe.geometry_n_t=1000 (repeatable; probe.* keys only)");
  probe->add_option("--device", probe_device, "run the probes on cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  probe->add_flag("--quiet", probe_cmd.quiet, "no line per probed step");

  CLI11_PARSE(app, argc, argv);
  try {
    if (info->parsed()) {
      fmt::print("grokscope {}\n  cpu: {}\n  cuda: {}\n", gs::experiments::git_revision(), gs::kernels::cpu_description(),
                 gs::kernels::cuda_available() ? "available" : gs::kernels::cuda_unavailable_reason());
      return 0;
    }
    if (report->parsed()) {
      report_cmd.runs.assign(report_runs.begin(), report_runs.end());
      report_cmd.out = report_out;
      report_cmd.figures = !report_no_figures;
      return gs::experiments::run_report_command(report_cmd);
    }
    if (probe->parsed()) {
      if (probe_resume.empty() && (probe_run.empty() || probe_out.empty()))
        throw gs::Error("probe: give a run directory and --out DIR (grokscope probe RUN_DIR --out DIR), or --resume DIR "
                        "to continue a stopped probe");
      probe_cmd.run = probe_run;
      probe_cmd.out = probe_resume.empty() ? probe_out : probe_resume;
      probe_cmd.resume = !probe_resume.empty();
      probe_cmd.device = probe_device == "cuda" ? gs::Device::cuda : gs::Device::cpu;
      probe_cmd.command_line.assign(argv, argv + argc);
      return gs::experiments::run_probe_command(probe_cmd);
    }
    if (geometry->parsed()) {
      return run_geometry(geo_x, geo_y, geo_kappa, geo_nt, geo_seed, geo_json, {!geo_keep_centers, geo_center_k},
                          geo_device == "cuda" ? gs::Device::cuda : gs::Device::cpu);
    }
    if (ntk->parsed()) {
      ntk_cmd.recipe = ntk_recipe.empty()
                           ? gs::experiments::parse_recipe(default_recipe, "experiments/default.toml (compiled in)")
                           : gs::experiments::load_recipe(ntk_recipe);
      return gs::experiments::run_ntk_command(ntk_cmd);
    }
    // Asked for the GPU: say at once if there is none, before any data is read.
    const gs::Device train_device = device == "cuda" ? gs::Device::cuda : gs::Device::cpu;
    if (train->parsed() && train_device == gs::Device::cuda && !gs::kernels::cuda_available())
      throw gs::Error(std::string("--device cuda: ") + gs::kernels::cuda_unavailable_reason() +
                      "; train with --device cpu (the default) instead");
    if (train->parsed() && tf32 && train_device != gs::Device::cuda)
      throw gs::Error("--tf32 multiplies on a GPU's tensor cores; give it with --device cuda (the CPU multiplies in FP32)");
    if (train->parsed() && !resume_dir.empty()) {
      if (!recipe_path.empty() || !overrides.empty() || !out.empty())
        throw gs::Error("--resume continues the recipe the run recorded: give no recipe, --set or --out with it");
      gs::experiments::RunOptions options;
      options.command_line.assign(argv, argv + argc);
      options.quiet = quiet;
      options.device = train_device;
      options.step_graph = !no_graph;
      options.tf32 = tf32;
      auto runner = gs::experiments::Runner::resume(resume_dir, options);
      add_probes(runner);
      fmt::print("grokscope: resuming {}\n", resume_dir);
      const int code = runner.run();
      if (code == 0) print_done(runner, resume_dir);
      return code;
    }
    if (train->parsed()) {
      auto recipe = recipe_path.empty()
                        ? gs::experiments::parse_recipe(default_recipe, "experiments/default.toml (compiled in)", overrides)
                        : gs::experiments::load_recipe(recipe_path, overrides);
      gs::experiments::RunOptions options;
      options.out = out.empty() ? "runs/" + recipe.name + "-" + timestamp() : out;
      options.command_line.assign(argv, argv + argc);
      options.quiet = quiet;
      options.device = train_device;
      options.step_graph = !no_graph;
      options.tf32 = tf32;
      fmt::print("grokscope: training {} into {}{}\n", recipe.name, options.out.string(),
                 train_device == gs::Device::cpu ? "" : " on the cuda device");
      if (!recipe.description.empty()) fmt::print("  {}\n", recipe.description);
      gs::experiments::Runner runner(recipe, options);
      add_probes(runner);
      const int code = runner.run();
      if (code == 0) print_done(runner, options.out.string());
      return code;
    }
  } catch (const gs::Error& e) {
    fmt::print(stderr, "\ngrokscope: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "\ngrokscope: out of memory; use fewer probe points or a smaller recipe\n");
    return 1;
  } catch (const std::exception& e) {  // a library's error that no check above put into words
    fmt::print(stderr, "\ngrokscope: {}\n", e.what());
    return 1;
  }
  return 0;
}
