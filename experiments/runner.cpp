#include "experiments/runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/autograd.h"
#include "engine/io/files.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/step_graph.h"
#include "experiments/console.h"
#include "experiments/probe_csv.h"
#include "experiments/schedule.h"
#include "experiments/step_queue.h"
#include "kernels/backend.h"
#include "models/models.h"

#ifndef GROKSCOPE_SOURCE_DIR
#define GROKSCOPE_SOURCE_DIR "."
#endif

namespace gs::experiments {

namespace {

std::string run_shell(const std::string& command) {
  std::string out;
  if (std::FILE* p = popen(command.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

double weight_norm(const nn::NamedTensors& params, const std::string& prefix) {
  NoGrad no_tape;
  double total = 0;
  for (const auto& [name, p] : params)
    if (prefix.empty() || name.rfind(prefix, 0) == 0) total += ops::sum(ops::mul(p, p)).item();
  return std::sqrt(total);
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Recipe::Optimizer& o, std::vector<Tensor> params) {
  if (o.name == "sgd")
    return std::make_unique<optim::SGD>(std::move(params), optim::SgdOptions{o.lr, o.momentum, 0.0, o.weight_decay, o.nesterov});
  optim::AdamOptions a{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  return std::make_unique<optim::Adam>(std::move(params), a, o.name == "adamw");
}

}  // namespace

std::shared_ptr<nn::Sequential> make_model(const Recipe& r, const data::Dataset& train, Generator& gen) {
  const std::int64_t pixels = train.images.numel() / train.size();
  if (r.model.kind == "cnn") {
    GS_CHECK(train.images.size(2) == train.images.size(3), "{}: the CNN needs square images, {} has {}×{}", r.source.string(),
             train.name, train.images.size(2), train.images.size(3));
    return models::make_cnn({train.images.size(1), train.images.size(2), train.classes, r.model.init_scale, r.model.output_scale},
                            gen);
  }
  GS_CHECK(r.model.widths.front() == pixels, "{}: model.widths starts with {} but {} images have {} pixels", r.source.string(),
           r.model.widths.front(), train.name, pixels);
  GS_CHECK(r.model.widths.back() == train.classes, "{}: model.widths ends with {} but {} has {} classes", r.source.string(),
           r.model.widths.back(), train.name, train.classes);
  return models::make_mlp({r.model.widths, nn::parse_activation(r.model.activation), r.model.init_scale, r.model.output_scale},
                          gen);
}

RunData load_run_data(const Recipe& r) {
  const auto norm = r.data.normalize == "standard" ? data::Normalization::standard : data::Normalization::unit;
  RunData d;
  data::Dataset full_train = data::load_named(r.data.dataset, r.data.path, data::Split::train, norm);
  Generator subset_gen(r.train.seed, Stream::data);
  d.train = data::select(full_train, r.data.subset == "first" ? data::first_n(full_train, r.data.train_size)
                                                              : data::random_subset(full_train, r.data.train_size, subset_gen));
  d.train.name = full_train.name + fmt::format("[{}]", r.data.train_size);
  d.test = data::load_named(r.data.dataset, r.data.path, data::Split::test, norm);
  if (r.data.test_size > 0) d.test = data::select(d.test, data::first_n(d.test, r.data.test_size));
  Generator probe_gen(r.train.seed, Stream::probe);
  d.probe_train = data::select(d.train, data::balanced_subset(d.train, r.probe.train_size, probe_gen));
  d.probe_test = data::select(d.test, data::balanced_subset(d.test, r.probe.test_size, probe_gen));
  if (r.probe.geometry) {
    std::vector<char> present(static_cast<std::size_t>(d.test.classes), 0);
    for (auto y : d.test.labels.to_int_vector()) present[static_cast<std::size_t>(y)] = 1;
    const auto classes = static_cast<std::int64_t>(std::count(present.begin(), present.end(), 1));
    d.probe_geometry = data::select(d.test, data::balanced_subset(d.test, r.probe.geometry_per_class * classes, probe_gen));
  }
  return d;
}

void load_checkpoint(nn::Sequential& model, const std::filesystem::path& file) {
  auto ckpt = io::load_safetensors(file);
  auto params = model.named_parameters("layers.");
  for (auto& [name, p] : params) {
    const Tensor* found = nullptr;
    for (const auto& [n, t] : ckpt.tensors)
      if (n == name) found = &t;
    GS_CHECK(found != nullptr, "{}: no tensor '{}', which the recipe's network has ({}); the checkpoint is for another "
             "architecture", file.string(), name, p.describe());
    GS_CHECK(found->shape() == p.shape(), "{}: tensor '{}' is {} but the recipe's network needs {}", file.string(), name,
             found->shape().str(), p.shape().str());
    p.copy_(found->dtype() == p.dtype() ? *found : found->to(p.dtype()));
  }
  GS_CHECK(ckpt.tensors.size() == params.size(), "{}: {} tensors, but the recipe's network has {} parameters; the "
           "checkpoint is for another architecture", file.string(), ckpt.tensors.size(), params.size());
}

std::string git_revision() {
  const std::string dir = GROKSCOPE_SOURCE_DIR;
  std::string rev = run_shell("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (rev.empty()) return "unknown";
  if (!run_shell("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null").empty()) rev += "-dirty";
  return rev;
}

Tensor recipe_loss(const std::string& kind, const Tensor& logits, const Tensor& labels, std::int64_t classes) {
  if (kind == "ce") return ops::cross_entropy(logits, labels);
  GS_CHECK(logits.size(1) == classes, "the network has {} outputs for {} classes", logits.size(1), classes);
  return ops::mse_one_hot_loss(logits, labels);
}

Evaluation evaluate(nn::Module& model, const data::Dataset& d, const std::string& loss_kind) {
  NoGrad no_tape;
  constexpr std::int64_t chunk = 2000;
  double loss = 0, correct = 0;
  for (std::int64_t begin = 0; begin < d.size(); begin += chunk) {
    const std::int64_t end = std::min(d.size(), begin + chunk);
    Tensor logits = model.forward(d.images.rows(begin, end));
    Tensor labels = d.labels.rows(begin, end);
    // Both losses are means (over rows, or over all rows·classes): weight each chunk by its rows.
    loss += recipe_loss(loss_kind, logits, labels, d.classes).item() * static_cast<double>(end - begin);
    correct += ops::accuracy(logits, labels) * static_cast<double>(end - begin);
  }
  return {loss / static_cast<double>(d.size()), correct / static_cast<double>(d.size())};
}

Runner::Runner(Recipe recipe, RunOptions options) : recipe_(std::move(recipe)), options_(std::move(options)) {
  GS_CHECK(!options_.tf32 || options_.device != Device::cpu,
           "--tf32 multiplies on a GPU's tensor cores; give it with --device cuda (the CPU multiplies in FP32)");
}

Runner Runner::resume(const std::filesystem::path& run_dir, RunOptions options) {
  GS_CHECK(std::filesystem::exists(run_dir / "ckpt" / "resume.safetensors"),
           "{}: no ckpt/resume.safetensors to resume from (is this a grokscope run directory?)", run_dir.string());
  Runner r(load_recipe(run_dir / "recipe.toml"), std::move(options));
  r.options_.out = run_dir;
  r.resuming_ = true;
  return r;
}

void Runner::add_probe(std::string name, ProbeHook hook) { probes_.emplace_back(std::move(name), std::move(hook)); }

namespace {

// A number the run itself wrote; anything else there means the file was damaged.
template <class T>
T written_number(const std::string& text, const std::string& where) {
  T value{};
  const char* end = text.data() + text.size();
  const auto parsed = std::from_chars(text.data(), end, value);
  GS_CHECK(parsed.ec == std::errc() && parsed.ptr == end && !text.empty(),
           "{}: '{}' is not a number; the run directory is damaged (start a new run)", where, text);
  return value;
}

// Keeps only the metric rows a resumed run has already covered: steps below `step`, and `step`
// itself when its row was written before the state was saved.
void truncate_metrics(const std::filesystem::path& file, std::int64_t step, bool keep_step) {
  std::ifstream in(file);
  GS_CHECK(in.good(), "{}: cannot read the metrics to resume", file.string());
  std::string text, line;
  std::getline(in, line);
  text = line + "\n";
  for (int number = 2; std::getline(in, line); ++number) {
    const auto comma = line.find(',');
    if (comma == std::string::npos) break;  // a torn last line from a crash
    const auto s = written_number<std::int64_t>(line.substr(0, comma), fmt::format("{}:{}", file.string(), number));
    if (s < step || (keep_step && s == step)) text += line + "\n";
  }
  io::write_file_atomically(file, text);
}

}  // namespace

double& TimeSplit::operator[](const std::string& part) {
  for (auto& [name, seconds] : parts)
    if (name == part) return seconds;
  return parts.emplace_back(part, 0.0).second;
}

std::string TimeSplit::summary(double total) const {
  std::string text = duration(total);
  for (std::size_t i = 0; i < parts.size(); ++i)
    text.append(i ? ", " : ": ")
        .append(fmt::format("{} {} ({:.0f}%)", parts[i].first, duration(parts[i].second),
                            total > 0 ? 100 * parts[i].second / total : 0.0));
  return text;
}

int Runner::run() {
  namespace fs = std::filesystem;
  const Recipe& r = recipe_;
  const fs::path dir = options_.out;
  io::make_directories(dir / "ckpt", "choose another --out");
  // Held to the end of the run: a second grokscope training into this directory (a --resume in
  // another terminal, a sweep started twice) stops here instead of writing over this one.
  const io::FileLock lock(dir / "run.lock", "wait for it to finish or stop it (Ctrl-C), or choose another --out");
  if (!resuming_)
    GS_CHECK(!fs::exists(dir / "metrics.csv"),
             "{} already holds a run (metrics.csv); choose another --out, --resume it, or delete it to start over",
             dir.string());

  RunData d = load_run_data(r);
  Generator init_gen(r.train.seed, Stream::init);
  // `model` lives on the CPU: the probes and checkpoints read it. Training on another device
  // trains `trained` there, a copy whose weights are copied back before every probe step.
  auto model = make_model(r, d.train, init_gen);
  const Device device = options_.device;
  std::shared_ptr<nn::Sequential> trained = model;
  data::Dataset train_set = d.train, test_set = d.test;  // where `trained` evaluates
  if (device != Device::cpu) {
    GS_CHECK(d.train.size() <= std::numeric_limits<std::int32_t>::max(),
             "{}: {} training rows; a run on a GPU numbers them as i32. Lower data.train_size", r.name, d.train.size());
    Generator same_init(r.train.seed, Stream::init);
    trained = make_model(r, d.train, same_init);
    trained->to(device);
    for (data::Dataset* set : {&train_set, &test_set}) {
      set->images = set->images.to(device);
      set->labels = set->labels.to(device);
    }
  }
  auto params = trained->named_parameters("layers.");
  auto cpu_params = model->named_parameters("layers.");
  auto sync_probe_model = [&] {
    if (trained == model) return;
    for (std::size_t i = 0; i < params.size(); ++i) cpu_params[i].second.copy_(params[i].second);
  };
  const std::string output_prefix = "layers." + models::output_layer_prefix(*model) + ".";
  auto optimizer = make_optimizer(r.optimizer, trained->parameters());
  data::Batches batches(d.train, r.train.batch_size, r.train.drop_last, Generator(r.train.seed, Stream::shuffle));

  // Where the loop starts, and whether that step's metrics and probes are already done.
  std::int64_t first_step = 0;
  bool metrics_done = false, probes_done = false;
  double elapsed_before = 0;
  nlohmann::ordered_json info;
  if (resuming_) {
    auto state = io::load_safetensors(dir / "ckpt" / "resume.safetensors");
    auto meta = [&](const char* key) {
      auto it = state.metadata.find(key);
      GS_CHECK(it != state.metadata.end(), "{}/ckpt/resume.safetensors lacks '{}'; it is damaged", dir.string(), key);
      return it->second;
    };
    auto meta_number = [&]<class T>(const char* key, T) {
      return written_number<T>(meta(key), fmt::format("{}/ckpt/resume.safetensors, metadata '{}'", dir.string(), key));
    };
    GS_CHECK(meta("finished") != "1", "{} finished at step {}; nothing to resume", dir.string(), meta("step"));
    first_step = meta_number("step", std::int64_t{});
    metrics_done = meta("metrics_done") == "1";
    probes_done = meta("probes_done") == "1";
    elapsed_before = meta_number("seconds", double{});
    for (auto& [name, t] : params) t.copy_(state.get("model." + name));
    nn::NamedTensors opt_state;
    for (const auto& [name, t] : optimizer->state()) opt_state.emplace_back(name, state.get("optimizer." + name));
    optimizer->load_state(opt_state, meta_number("optimizer_steps", std::int64_t{}));
    batches.restore({meta_number("shuffle_offset", std::uint64_t{}), meta_number("epoch", std::int64_t{}),
                     meta_number("position", std::int64_t{})});
    truncate_metrics(dir / "metrics.csv", first_step, metrics_done);
    try {
      info = nlohmann::ordered_json::parse(std::ifstream(dir / "run.json"));
    } catch (const nlohmann::json::exception& e) {
      fail("{}/run.json: {}; the run directory is damaged (start a new run)", dir.string(), e.what());
    }
    info["resumed_at"].push_back(first_step);
    info["resumed_on"].push_back(device_name(device));
    info["resumed_precision"].push_back(options_.tf32 ? "tf32" : "fp32");
  } else {
    io::write_file_atomically(dir / "recipe.toml", r.to_toml());
    info = {{"recipe", r.name},
            {"recipe_file", r.source.string()},
            {"git_revision", git_revision()},
            {"command_line", options_.command_line},
            {"parameters", model->parameter_count()},
            {"device", device_name(device)},
            {"training_precision", options_.tf32 ? "tf32" : "fp32"},  // of the steps' GEMMs and convolutions
            {"cpu", kernels::cpu_description()},
            {"train_rows", d.train.size()},
            {"test_rows", d.test.size()}};
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Where the time goes, in run.json's "seconds", carried over a resume: the training steps (on a
  // GPU, queuing them and waiting for them), the metrics' evaluations, the checkpoints, each probe.
  time_split_ = {};
  for (const char* part : {"training", "evaluation", "checkpoints"}) time_split_[part] = 0;
  for (const auto& [name, hook] : probes_) time_split_[name + "_probe"] = 0;
  if (resuming_ && info.contains("seconds") && info["seconds"].is_object())
    for (const auto& [part, seconds] : info["seconds"].items())
      if (part != "total" && seconds.is_number()) time_split_[part] = seconds.get<double>();
  // Every part is named above, so these slots stay where they are: the loop adds to them without
  // looking a name up (once a step, for the training).
  double& training_seconds = time_split_["training"];
  double& evaluation_seconds = time_split_["evaluation"];
  double& checkpoint_seconds = time_split_["checkpoints"];
  std::vector<double*> probe_seconds;
  for (const auto& [name, hook] : probes_) probe_seconds.push_back(&time_split_[name + "_probe"]);
  auto timed = [](double& seconds, auto&& work) {
    const auto t0 = std::chrono::steady_clock::now();
    work();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto write_info = [&](const std::string& status, std::int64_t step) {
    info["status"] = status;
    info["last_step"] = step;
    total_seconds_ = elapsed();
    auto seconds = nlohmann::ordered_json::object();
    seconds["total"] = total_seconds_;
    for (const auto& [part, value] : time_split_.parts) seconds[part] = value;
    info["seconds"] = seconds;
    io::write_file_atomically(dir / "run.json", info.dump(2) + "\n");
  };
  write_info("running", first_step);

  const auto metric_list = r.schedule.metrics == "every" ? every_steps(r.train.steps, r.schedule.metric_every)
                                                         : study_metric_steps(r.train.steps, r.schedule.metric_points);
  const std::set<std::int64_t> metric_steps(metric_list.begin(), metric_list.end());
  std::set<std::int64_t> probe_steps;
  for (auto s : r.schedule.probe_steps.empty() ? log_spaced_steps(r.train.steps, r.schedule.probe_points) : r.schedule.probe_steps)
    probe_steps.insert(s);
  // Always the initial weights too: the NTK's distances are measured from their kernel, and a
  // schedule without step 0 made the first probe step fail for want of its checkpoint.
  probe_steps.insert(0);

  std::ofstream metrics(dir / "metrics.csv", resuming_ ? std::ios::app : std::ios::trunc);
  GS_CHECK(metrics.good(), "{}: cannot write metrics.csv", dir.string());
  if (!resuming_)
    metrics << "step,epoch,train_loss,train_accuracy,test_loss,test_accuracy,weight_norm,output_weight_norm,seconds\n";

  std::string last_checkpoint = "none yet";
  const fs::path checkpoint_dir = dir / "ckpt";
  auto checkpoint = [&](std::int64_t step) {
    const fs::path file = checkpoint_dir / fmt::format("step_{}.safetensors", step);
    io::save_safetensors(file, params, {{"step", std::to_string(step)}, {"recipe", r.name}, {"format", "pytorch state_dict"}});
    last_checkpoint = file.string();
  };
  // Everything needed to continue bit-identically from `step`, in one file replaced atomically.
  auto save_resume_state = [&](std::int64_t step, bool step_metrics_done, bool step_probes_done, bool finished) {
    nn::NamedTensors tensors;
    for (const auto& [name, t] : params) tensors.emplace_back("model." + name, t);
    for (const auto& [name, t] : optimizer->state()) tensors.emplace_back("optimizer." + name, t);
    const auto b = batches.state();
    io::save_safetensors(dir / "ckpt" / "resume.safetensors", tensors,
                         {{"step", std::to_string(step)},
                          {"metrics_done", step_metrics_done ? "1" : "0"},
                          {"probes_done", step_probes_done ? "1" : "0"},
                          {"finished", finished ? "1" : "0"},
                          {"optimizer_steps", std::to_string(optimizer->steps_taken())},
                          {"shuffle_offset", std::to_string(b.generator_offset)},
                          {"epoch", std::to_string(b.epoch)},
                          {"position", std::to_string(b.position)},
                          {"seconds", fmt::format("{:.17g}", elapsed())}});
  };

  // One training step on the next batch. On the CPU the ops run as they are called. On a GPU the
  // training set is already there: only the batch's row numbers are uploaded, into a buffer kept
  // per batch size (the last batch of an epoch may be shorter), and the step gathers its rows
  // there. It runs eagerly once per size, and is then captured as a graph and replayed: the
  // same kernels on the same buffers, one launch per step. A capture that fails says why, once,
  // and the steps run kernel by kernel from then on.
  struct DeviceStep {
    Tensor rows, loss;
    std::unique_ptr<StepGraph> graph;
    bool warmed_up = false;
  };
  std::map<std::int64_t, DeviceStep> device_steps;
  // GPU runs queue their steps' row uploads and loss read-backs (experiments/step_queue.h).
  std::unique_ptr<StepQueue> step_queue;
  if (device != Device::cpu) step_queue = std::make_unique<StepQueue>(device, r.train.batch_size);
  bool capture_refused = !options_.step_graph;
  if (device != Device::cpu) info["training_step"] = capture_refused ? "kernel by kernel (--no-graph)" : "not captured yet";
  auto train_step = [&]() -> Tensor {
    auto forward_backward = [&](const Tensor& images, const Tensor& labels) {
      optimizer->zero_grad();
      Tensor loss = recipe_loss(r.train.loss, trained->forward(images), labels, d.train.classes);
      loss.backward();
      optimizer->step();
      return loss;
    };
    if (device == Device::cpu) {
      const data::Batch batch = batches.next();
      return forward_backward(batch.images, batch.labels);
    }
    const data::BatchRows batch = batches.next_rows();
    const std::vector<std::int32_t> rows(batch.rows.begin(), batch.rows.end());  // i32: checked where the run starts
    const auto size = static_cast<std::int64_t>(rows.size());
    DeviceStep& s = device_steps[size];
    if (!s.rows.defined()) s.rows = Tensor::empty(Shape{size}, DType::i32, device);
    step_queue->upload_rows(rows, s.rows);
    if (s.graph) {
      optimizer->set_step_count(optimizer->steps_taken() + 1);
      s.graph->replay();
      return s.loss;
    }
    auto work = [&] {
      s.loss = forward_backward(ops::gather_rows(train_set.images, s.rows), ops::gather_rows(train_set.labels, s.rows));
    };
    if (!s.warmed_up || capture_refused) {
      work();
      s.warmed_up = true;
      return s.loss;
    }
    const std::int64_t steps_before = optimizer->steps_taken();
    std::string why_not;
    s.graph = StepGraph::capture(device, work, why_not);
    if (!s.graph) {
      optimizer->set_step_count(steps_before);
      capture_refused = true;
      info["training_step"] = "kernel by kernel: " + why_not;
      fmt::print(stderr, "grokscope: the training step could not be captured as a CUDA graph ({}); it runs kernel by kernel\n",
                 why_not);
      work();
      return s.loss;
    }
    s.graph->replay();
    std::string captured;
    for (const auto& [batch_size, step] : device_steps)
      if (step.graph) captured += fmt::format("{}batch {}: {} operations", captured.empty() ? "" : ", ", batch_size, step.graph->operations());
    info["training_step"] = "one CUDA graph per batch shape (" + captured + ")";
    if (!options_.quiet)
      fmt::print(stderr, "grokscope: the training step on batches of {} is one CUDA graph of {} operations, replayed every step\n",
                 size, s.graph->operations());
    return s.loss;
  };

  auto diverged = [&](std::int64_t step, double loss) {
    write_info("diverged", step);
    fail("step {}: the training loss is {}; the run stopped there. The last good checkpoint is {}. Lower optimizer.lr or "
         "model.init_scale",
         step, loss, last_checkpoint);
  };
  // The queued steps' losses, before anything reads the weights the steps wrote.
  auto check_queued_losses = [&] {
    if (!step_queue) return;
    if (const auto bad = step_queue->check()) diverged(bad->step, bad->loss);
  };

  StopSignals signals;
  Progress progress(options_.quiet);
  Evaluation train_eval, test_eval;
  std::int64_t step = first_step;
  // Any other error (a device fault, a full disk, memory) ends the run too: run.json says
  // "failed" at the step, and the message says what is kept and how to go on.
  auto failed = [&](const std::string& what) {
    progress.finish();
    info["failures"].push_back({{"step", step}, {"error", what}});  // kept through a resume
    write_info("failed", step);
    fail("step {}: {}\nThe run stopped there; {} holds what it logged before, and its last checkpoint is {}. "
         "`grokscope train --resume {}` continues from the last probe step",
         step, what, dir.string(), last_checkpoint, dir.string());
  };
  try {
    for (;; ++step) {
      const bool resumed_here = step == first_step;
      if (metric_steps.count(step) || probe_steps.count(step) || step == r.train.steps)
        timed(training_seconds, check_queued_losses);  // waits for the queued steps
      if (metric_steps.count(step) && !(resumed_here && metrics_done)) {
        timed(evaluation_seconds, [&] {
          train_eval = evaluate(*trained, train_set, r.train.loss);
          test_eval = evaluate(*trained, test_set, r.train.loss);
        });
        const double norm = weight_norm(params, ""), out_norm = weight_norm(params, output_prefix);
        if (!std::isfinite(norm)) {
          write_info("diverged", step);
          fail("step {}: the weights are no longer finite (norm {}); the last good checkpoint is {}. Lower optimizer.lr or "
               "model.init_scale",
               step, norm, last_checkpoint);
        }
        metrics << fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{:.3f}\n", step, batches.state().epoch,
                               train_eval.loss, train_eval.accuracy, test_eval.loss, test_eval.accuracy, norm, out_norm, elapsed());
        flush_checked(metrics, dir / "metrics.csv");
        progress.report(step, r.train.steps, elapsed(), train_eval, test_eval, step == r.train.steps);
      }
      if (probe_steps.count(step) && !(resumed_here && probes_done)) {
        timed(checkpoint_seconds, [&] {
          sync_probe_model();
          checkpoint(step);
        });
        for (std::size_t p = 0; p < probes_.size(); ++p)
          timed(*probe_seconds[p], [&] {
            probes_[p].second({step, *model, d.probe_train, d.probe_test, d.probe_geometry, dir, checkpoint_dir,
                               step == r.train.steps, trained == model ? nullptr : trained.get()});
          });
        timed(checkpoint_seconds, [&] { save_resume_state(step, true, true, step == r.train.steps); });
        write_info("running", step);  // its time split so far
      }
      if (step == r.train.steps) break;

      timed(training_seconds, [&] {
        const Tensor loss = [&] {  // TF32 for the step only: evaluations and probes multiply in FP32
          kernels::ScopedGemmPrecision precision(options_.tf32 ? kernels::GemmPrecision::tf32 : kernels::GemmPrecision::fp32);
          return train_step();
        }();
        if (step_queue) {
          if (step_queue->queue_loss(loss, step + 1)) check_queued_losses();
        } else if (const double value = loss.item(); !std::isfinite(value)) {
          diverged(step + 1, value);
        }
      });
      if (stop_requested() != 0 || step + 1 == options_.stop_after_step) {
        check_queued_losses();
        checkpoint(step + 1);
        save_resume_state(step + 1, false, false, false);
        flush_checked(metrics, dir / "metrics.csv");
        write_info("interrupted", step + 1);
        progress.finish();
        // Said even with --quiet: a stopped run must say where it stopped and how to go on.
        fmt::print(stderr, "grokscope: stopped after step {}; checkpoint {}; continue with grokscope train --resume {}\n",
                   step + 1, last_checkpoint, dir.string());
        return 130;
      }
    }
  } catch (const Error& e) {
    if (info["status"] != "running") throw;  // diverged: already said, with its own advice
    failed(e.what());
  } catch (const std::exception& e) {
    failed(e.what());
  }
  progress.finish();
  save_resume_state(r.train.steps, true, true, true);
  write_info("finished", r.train.steps);
  return 0;
}

}  // namespace gs::experiments
