#include "experiments/ntk_command.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "engine/io/npy.h"
#include "engine/probe/ntk.h"
#include "engine/probe/ntk_stream.h"
#include "experiments/runner.h"

namespace gs::experiments {

namespace {

// --against for kernels too large to hold: the distance and the output block's, streamed.
int run_streamed(const NtkCommand& cmd, nn::Sequential& model, const Tensor& x) {
  GS_CHECK(!cmd.against.empty(), "NTK of {} points is too large to hold in memory; give --against to compare two "
           "checkpoints streamed, or a smaller --n", x.size(0));
  auto a = probe::kernel_factors(model, x);
  load_checkpoint(model, cmd.against);
  auto b = probe::kernel_factors(model, x);
  const auto s = probe::compare_streamed(a, b);
  nlohmann::ordered_json out{{"checkpoint", cmd.checkpoint.string()}, {"against", cmd.against.string()},
                             {"samples", a.samples},  {"classes", a.classes},
                             {"streamed", true},      {"distance", s.distance()},
                             {"output_distance", probe::kernel_distance(probe::output_gram(a), probe::output_gram(b))}};
  if (cmd.json)
    fmt::print("{}\n", out.dump());
  else
    fmt::print("NTK of {} on {} points × {} logits, streamed: distance to {}: {:.6g} (output layer {:.6g})\n",
               cmd.checkpoint.string(), a.samples, a.classes, cmd.against.string(), s.distance(),
               out["output_distance"].get<double>());
  return 0;
}

}  // namespace

int run_ntk_command(const NtkCommand& cmd) {
  for (const auto& f : {cmd.checkpoint, cmd.against})
    GS_CHECK(f.empty() || std::filesystem::exists(f), "{}: no such checkpoint", f.string());
  Recipe r = cmd.recipe;
  GS_CHECK(cmd.probe_set == "train" || cmd.probe_set == "test", "--probe must be train or test, got '{}'", cmd.probe_set);
  if (cmd.n > 0) (cmd.probe_set == "train" ? r.probe.train_size : r.probe.test_size) = cmd.n;
  RunData d = load_run_data(r);
  Generator gen(r.train.seed, Stream::init);
  auto model = make_model(r, d.train, gen);

  Tensor x, labels;
  if (!cmd.inputs.empty()) {
    x = io::load_npy(cmd.inputs);
    GS_CHECK(x.dtype() == DType::f32, "{}: the inputs must be float32, got {}", cmd.inputs.string(), dtype_name(x.dtype()));
    const std::int64_t per = d.train.images.numel() / d.train.size();
    GS_CHECK(x.rank() >= 2 && x.numel() / x.size(0) == per, "{}: inputs {} do not match the recipe's images ({} values each)",
             cmd.inputs.string(), x.shape().str(), per);
    if (x.rank() == 2) x = x.view(Shape{x.size(0), d.train.images.size(1), d.train.images.size(2), d.train.images.size(3)});
  } else {
    const data::Dataset& set = cmd.probe_set == "train" ? d.probe_train : d.probe_test;
    x = set.images;
    labels = set.labels;
  }

  load_checkpoint(*model, cmd.checkpoint);
  // Kernels that would take more than a quarter of free memory are compared streamed, tile by
  // tile from their factors; then only the distance, the output block's and the shares are given.
  const double rows = static_cast<double>(x.size(0)) * static_cast<double>(d.train.classes);
  const double kernel_bytes = rows * rows * static_cast<double>(dtype_size(x.dtype()));
  const double free_bytes = static_cast<double>(probe::available_memory_bytes());
  if (free_bytes > 0 && kernel_bytes > free_bytes / 4) return run_streamed(cmd, *model, x);
  probe::Ntk k = probe::empirical_ntk(*model, x);
  nlohmann::ordered_json out{{"checkpoint", cmd.checkpoint.string()}, {"samples", k.samples}, {"classes", k.classes}};
  double total = 0;
  for (double t : k.layer_traces) total += t;
  nlohmann::ordered_json shares;
  for (std::size_t l = 0; l < k.layer_names.size(); ++l) shares[k.layer_names[l]] = k.layer_traces[l] / total;
  out["trace"] = total;
  out["layer_shares"] = shares;
  out["alignment"] = labels.defined() ? nlohmann::json(probe::kernel_alignment(k.kernel, labels, k.classes)) : nlohmann::json();
  if (!cmd.against.empty()) {
    Tensor ka = k.kernel, ta = probe::trace_kernel(k.kernel, k.classes);
    load_checkpoint(*model, cmd.against);
    probe::Ntk kb = probe::empirical_ntk(*model, x);
    out["against"] = cmd.against.string();
    out["distance"] = probe::kernel_distance(ka, kb.kernel);
    out["trace_distance"] = probe::kernel_distance(ta, probe::trace_kernel(kb.kernel, kb.classes));
    out["output_distance"] = probe::kernel_distance(k.output_gram, kb.output_gram);
  }
  if (cmd.json) {
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("NTK of {} on {} points × {} logits ({})\n", cmd.checkpoint.string(), k.samples, k.classes,
             cmd.inputs.empty() ? cmd.probe_set + " probe set" : cmd.inputs.string());
  for (auto& [layer, share] : shares.items()) fmt::print("  {:<12} share of trace {:.4f}\n", layer, share.get<double>());
  if (labels.defined()) fmt::print("  alignment with the labels   {:.6g}\n", out["alignment"].get<double>());
  if (!cmd.against.empty()) {
    fmt::print("  distance to {}: {:.6g} (trace kernel {:.6g}, output layer {:.6g})\n", cmd.against.string(),
               out["distance"].get<double>(), out["trace_distance"].get<double>(), out["output_distance"].get<double>());
  }
  return 0;
}

}  // namespace gs::experiments
