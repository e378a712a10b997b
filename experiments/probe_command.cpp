#include "experiments/probe_command.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/files.h"
#include "engine/rng.h"
#include "experiments/console.h"
#include "experiments/probe_csv.h"
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

// What a probe needs to begin, or to go on: the run, the recipe as probed, DIR/run.json as it
// will be written, the run's checkpoint steps and the index of the first one to probe.
struct ProbeJob {
  fs::path run;
  Recipe recipe;
  nlohmann::ordered_json info;
  std::vector<std::int64_t> steps;
  std::size_t first = 0;
  double seconds_before = 0;  // spent by the earlier, stopped, invocations
};

std::vector<std::int64_t> checked_checkpoint_steps(const fs::path& run, const Recipe& recipe) {
  const std::vector<std::int64_t> steps = checkpoint_steps(run / "ckpt");
  GS_CHECK(!steps.empty(), "probe: {}: no checkpoints (ckpt/step_N.safetensors) to probe", run.string());
  GS_CHECK(!recipe.probe.ntk || steps.front() == 0,
           "probe: {}: no ckpt/step_0.safetensors, the initial weights the NTK's distances are measured from; "
           "probe with --set probe.ntk=false for the geometry alone",
           run.string());
  return steps;
}

// A new probe: checks the run and the settings, and writes what the report needs beside the
// probes' CSVs: the recipe as probed and the run's metrics.
ProbeJob new_job(const ProbeCommand& cmd) {
  GS_CHECK(!cmd.run.empty(), "probe: give the run directory to probe, or --resume DIR to continue a stopped probe");
  GS_CHECK(fs::is_directory(cmd.run), "probe: {}: no such run directory", cmd.run.string());
  GS_CHECK(fs::exists(cmd.run / "recipe.toml"), "probe: {}: no recipe.toml; is it a run directory written by grokscope train?",
           cmd.run.string());
  for (const auto& o : cmd.overrides)
    GS_CHECK(o.rfind("probe.", 0) == 0,
             "probe: --set {}: only probe.* keys can change here, since the checkpoints were trained with the rest of {}; "
             "train a new run to change it",
             o, (cmd.run / "recipe.toml").string());
  ProbeJob job;
  job.run = cmd.run;
  job.recipe = load_recipe(cmd.run / "recipe.toml", cmd.overrides);
  GS_CHECK(job.recipe.probe.ntk || job.recipe.probe.geometry, "probe: probe.ntk and probe.geometry are both false: nothing to probe");
  job.steps = checked_checkpoint_steps(cmd.run, job.recipe);
  GS_CHECK(!cmd.out.empty(), "probe: give --out, a directory for the probes' results");
  GS_CHECK(!fs::exists(cmd.out) || !fs::equivalent(cmd.out, cmd.run),
           "probe: --out {} is the run directory itself, whose ntk.csv and geometry.csv are the run's record; choose "
           "another --out",
           cmd.out.string());
  return job;
}

void start_job(const ProbeCommand& cmd, ProbeJob& job) {
  for (const char* file : {"metrics.csv", "ntk.csv", "geometry.csv"})
    GS_CHECK(!fs::exists(cmd.out / file),
             "probe: {} already holds results ({}); choose another --out, delete it, or continue a stopped probe there "
             "with grokscope probe --resume {}",
             cmd.out.string(), file, cmd.out.string());
  io::write_file_atomically(cmd.out / "recipe.toml", job.recipe.to_toml());
  job.info = probed_run_info(cmd, job.steps);
  io::write_file_atomically(cmd.out / "run.json", job.info.dump(2) + "\n");
  if (fs::exists(cmd.run / "metrics.csv")) fs::copy_file(cmd.run / "metrics.csv", cmd.out / "metrics.csv");
}

// A stopped probe: its run, recipe and time so far from DIR, and the first step to probe again:
// the last one every CSV of its probes logged (a probe killed within a step can leave that step's
// rows in part; the CSVs' rows from there on are dropped as the step is probed again).
ProbeJob resumed_job(const ProbeCommand& cmd) {
  GS_CHECK(cmd.overrides.empty(),
           "probe --resume: {} goes on with the settings it was started with (its recipe.toml); drop --set, or probe "
           "into a new --out",
           cmd.out.string());
  GS_CHECK(fs::is_directory(cmd.out), "probe --resume: {}: no such directory", cmd.out.string());
  ProbeJob job;
  try {
    job.info = nlohmann::ordered_json::parse(std::ifstream(cmd.out / "run.json"));
  } catch (const std::exception& e) {
    throw Error(fmt::format("probe --resume: {}/run.json unreadable ({}); is it a directory written by grokscope probe?",
                            cmd.out.string(), e.what()));
  }
  GS_CHECK(job.info.contains("probed_from") && job.info["probed_from"].is_string(),
           "probe --resume: {}/run.json has no probed_from: it was not written by grokscope probe (a training run "
           "continues with grokscope train --resume)",
           cmd.out.string());
  job.run = job.info["probed_from"].get<std::string>();
  GS_CHECK(fs::is_directory(job.run), "probe --resume: {}, the run {} probes, is gone", job.run.string(), cmd.out.string());
  job.recipe = load_recipe(cmd.out / "recipe.toml");
  job.steps = checked_checkpoint_steps(job.run, job.recipe);
  std::vector<std::int64_t> common;  // steps logged by every probe the recipe runs
  bool first_file = true;
  for (const auto& [on, file] : {std::pair{job.recipe.probe.ntk, "ntk.csv"}, std::pair{job.recipe.probe.geometry, "geometry.csv"}}) {
    if (!on) continue;
    const auto logged = fs::exists(cmd.out / file) ? logged_steps(cmd.out / file) : std::vector<std::int64_t>{};
    if (first_file) {
      common = logged;
    } else {
      std::vector<std::int64_t> both;
      std::set_intersection(common.begin(), common.end(), logged.begin(), logged.end(), std::back_inserter(both));
      common = both;
    }
    first_file = false;
  }
  if (!common.empty()) {
    const auto at = std::find(job.steps.begin(), job.steps.end(), common.back());
    job.first = at == job.steps.end() ? 0 : static_cast<std::size_t>(at - job.steps.begin());
  }
  job.seconds_before = job.info.value("probe_seconds", 0.0);
  // A probe written before probe_status existed has probe_seconds only once it finished.
  const bool finished = job.info.contains("probe_status") ? job.info["probe_status"] == "finished"
                                                          : job.info.contains("probe_seconds");
  if (finished && !common.empty() && common.back() == job.steps.back()) job.first = job.steps.size();  // nothing left
  job.info["probed_steps"] = job.steps;
  job.info["probe_resumed_at_step"] = job.first < job.steps.size() ? nlohmann::ordered_json(job.steps[job.first]) : nullptr;
  auto& lines = job.info["probe_command_lines_resumed"];
  if (!lines.is_array()) lines = nlohmann::ordered_json::array();
  lines.push_back(cmd.command_line);
  return job;
}

}  // namespace

int run_probe_command(const ProbeCommand& cmd) {
  ProbeJob job = cmd.resume ? resumed_job(cmd) : new_job(cmd);
  if (cmd.device == Device::cuda)
    GS_CHECK(kernels::cuda_available(), "probe: --device cuda: {}; probe with --device cpu (the default) instead",
             kernels::cuda_unavailable_reason());
  io::make_directories(cmd.out, "choose another --out");
  const io::FileLock lock(cmd.out / "run.lock", "wait for it to finish or stop it (Ctrl-C), or choose another --out");
  if (!cmd.resume) start_job(cmd, job);
  if (job.first == job.steps.size()) {
    fmt::print("grokscope probe: {} has probed every checkpoint of {} already; nothing to resume\n", cmd.out.string(),
               job.run.string());
    return 0;
  }
  const Recipe& recipe = job.recipe;
  const fs::path checkpoints = job.run / "ckpt";
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
  const auto seconds = [&] {
    return job.seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const auto write_info = [&](const char* status) {
    job.info["probe_status"] = status;
    job.info["probe_seconds"] = seconds();
    io::write_file_atomically(cmd.out / "run.json", job.info.dump(2) + "\n");
  };
  const auto& steps = job.steps;
  if (cmd.resume)
    fmt::print("grokscope probe: resuming {} at step {} ({} of {} checkpoints left)\n", cmd.out.string(), steps[job.first],
               steps.size() - job.first, steps.size());
  for (std::size_t i = job.first; i < steps.size(); ++i) {
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
    const bool stop = stop_requested() != 0 || (cmd.stop_after_steps > 0 && i + 1 - job.first == cmd.stop_after_steps);
    if (stop && i + 1 < steps.size()) {
      write_info("stopped");
      fmt::print(stderr, "grokscope probe: stopped after step {}; {} holds the rows of the {} steps probed; "
                 "`grokscope probe --resume {}` goes on\n", steps[i], cmd.out.string(), i + 1, cmd.out.string());
      return 130;
    }
  }
  write_info("finished");
  fmt::print("grokscope probe: {} checkpoints of {} probed in {} into {}; `grokscope report {} {}` compares them\n",
             steps.size(), job.run.string(), duration(seconds()), cmd.out.string(), job.run.string(), cmd.out.string());
  return 0;
}

}  // namespace gs::experiments
