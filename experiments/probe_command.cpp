#include "experiments/probe_command.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/files.h"
#include "engine/rng.h"
#include "experiments/console.h"
#include "experiments/probes.h"
#include "experiments/recipe.h"
#include "experiments/runner.h"
#include "kernels/backend.h"

namespace gs::experiments {

namespace fs = std::filesystem;

std::vector<std::int64_t> checkpoint_steps(const fs::path& checkpoint_dir) {
  std::vector<std::int64_t> steps;
  if (!fs::is_directory(checkpoint_dir)) return steps;
  const std::regex name(R"(step_(\d{1,18})\.safetensors)");
  for (const auto& entry : fs::directory_iterator(checkpoint_dir)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(file, m, name)) steps.push_back(std::stoll(m[1].str()));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

namespace {

// The run's run.json as it is, with how this directory was probed added; a run without a
// readable one gets a fresh object (its status is then unknown to the report).
nlohmann::ordered_json probed_run_info(const ProbeCommand& cmd, const std::vector<std::int64_t>& steps) {
  nlohmann::ordered_json info = nlohmann::ordered_json::object();
  try {
    info = nlohmann::ordered_json::parse(std::ifstream(cmd.run / "run.json"));
  } catch (const std::exception& e) {
    fmt::print(stderr, "grokscope probe: {}/run.json unreadable ({}); the copy says status unknown\n", cmd.run.string(), e.what());
    info = {{"status", "unknown"}};
  }
  info["probed_from"] = fs::absolute(cmd.run).lexically_normal().string();
  info["probe_command_line"] = cmd.command_line;
  info["probe_git_revision"] = git_revision();
  info["probe_device"] = cmd.device == Device::cpu ? "cpu" : "cuda";
  info["probed_steps"] = steps;
  return info;
}

}  // namespace

int run_probe_command(const ProbeCommand& cmd) {
  GS_CHECK(fs::is_directory(cmd.run), "probe: {}: no such run directory", cmd.run.string());
  GS_CHECK(fs::exists(cmd.run / "recipe.toml"), "probe: {}: no recipe.toml; is it a run directory written by grokscope train?",
           cmd.run.string());
  for (const auto& o : cmd.overrides)
    GS_CHECK(o.rfind("probe.", 0) == 0,
             "probe: --set {}: only probe.* keys can change here, since the checkpoints were trained with the rest of {}; "
             "train a new run to change it",
             o, (cmd.run / "recipe.toml").string());
  const Recipe recipe = load_recipe(cmd.run / "recipe.toml", cmd.overrides);
  GS_CHECK(recipe.probe.ntk || recipe.probe.geometry, "probe: probe.ntk and probe.geometry are both false: nothing to probe");
  if (cmd.device == Device::cuda)
    GS_CHECK(kernels::cuda_available(), "probe: --device cuda: {}; probe with --device cpu (the default) instead",
             kernels::cuda_unavailable_reason());

  const fs::path checkpoints = cmd.run / "ckpt";
  const std::vector<std::int64_t> steps = checkpoint_steps(checkpoints);
  GS_CHECK(!steps.empty(), "probe: {}: no checkpoints (ckpt/step_N.safetensors) to probe", cmd.run.string());
  GS_CHECK(!recipe.probe.ntk || steps.front() == 0,
           "probe: {}: no ckpt/step_0.safetensors, the initial weights the NTK's distances are measured from; "
           "probe with --set probe.ntk=false for the geometry alone",
           cmd.run.string());

  GS_CHECK(!cmd.out.empty(), "probe: give --out, a directory for the probes' results");
  GS_CHECK(!fs::exists(cmd.out) || !fs::equivalent(cmd.out, cmd.run),
           "probe: --out {} is the run directory itself, whose ntk.csv and geometry.csv are the run's record; choose "
           "another --out",
           cmd.out.string());
  io::make_directories(cmd.out, "choose another --out");
  const io::FileLock lock(cmd.out / "run.lock", "wait for it to finish or stop it (Ctrl-C), or choose another --out");
  for (const char* file : {"metrics.csv", "ntk.csv", "geometry.csv"})
    GS_CHECK(!fs::exists(cmd.out / file), "probe: {} already holds results ({}); choose another --out, or delete it",
             cmd.out.string(), file);

  // What the report reads beside the probes' CSVs: the recipe as probed, and the run's metrics.
  io::write_file_atomically(cmd.out / "recipe.toml", recipe.to_toml());
  nlohmann::ordered_json info = probed_run_info(cmd, steps);
  io::write_file_atomically(cmd.out / "run.json", info.dump(2) + "\n");
  if (fs::exists(cmd.run / "metrics.csv")) fs::copy_file(cmd.run / "metrics.csv", cmd.out / "metrics.csv");

  const RunData d = load_run_data(recipe);
  Generator gen(recipe.train.seed, Stream::init);
  auto model = make_model(recipe, d.train, gen);  // its weights are each checkpoint's in turn
  std::shared_ptr<nn::Sequential> device_model;
  if (cmd.device != Device::cpu) {
    device_model = make_model(recipe, d.train, gen);
    device_model->to(cmd.device);
  }
  auto params = model->named_parameters("layers.");
  auto hooks = recipe_probes(recipe);

  StopSignals signals;
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const fs::path file = checkpoints / fmt::format("step_{}.safetensors", steps[i]);
    load_checkpoint(*model, file);
    if (device_model) {
      auto on_device = device_model->named_parameters("layers.");
      for (std::size_t p = 0; p < params.size(); ++p) on_device[p].second.copy_(params[p].second);
    }
    for (auto& [name, hook] : hooks)
      hook({steps[i], *model, d.probe_train, d.probe_test, d.probe_geometry, cmd.out, checkpoints, i + 1 == steps.size(),
            device_model.get()});
    if (!cmd.quiet) fmt::print("grokscope probe: step {} ({} of {}), {}\n", steps[i], i + 1, steps.size(), duration(seconds()));
    if (stop_requested() != 0 && i + 1 < steps.size()) {
      fmt::print(stderr, "grokscope probe: stopped after step {}; {} holds the rows of the {} steps probed\n", steps[i],
                 cmd.out.string(), i + 1);
      return 130;
    }
  }
  info["probe_seconds"] = seconds();
  io::write_file_atomically(cmd.out / "run.json", info.dump(2) + "\n");
  fmt::print("grokscope probe: {} checkpoints of {} probed in {} into {}; `grokscope report {} {}` compares them\n",
             steps.size(), cmd.run.string(), duration(seconds()), cmd.out.string(), cmd.run.string(), cmd.out.string());
  return 0;
}

}  // namespace gs::experiments
