#include "experiments/ntk_probe.h"

#include <fmt/format.h>


#include "engine/io/files.h"
#include "engine/io/npy.h"
#include "experiments/probe_csv.h"
#include "engine/io/safetensors.h"

namespace gs::experiments {

namespace {

// K minus the output layer's block output_gram ⊗ I_C.
Tensor without_output_block(const Tensor& kernel, const Tensor& output_gram, std::int64_t classes) {
  Tensor rest = kernel.to(DType::f64);
  double* r = rest.data<double>();
  const double* g = output_gram.data<double>();
  const std::int64_t rows = kernel.size(0), n = rows / classes;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t a = 0; a < classes; ++a) r[(i * classes + a) * rows + j * classes + a] -= g[i * n + j];
  return rest;
}

// Evaluates f with the model's weights temporarily replaced by a checkpoint's.
template <class F>
void with_checkpoint(nn::Sequential& model, const std::filesystem::path& file, F&& f) {
  auto params = model.named_parameters("layers.");
  std::vector<Tensor> saved;
  for (auto& [name, p] : params) saved.push_back(p.clone());
  load_checkpoint(model, file);
  f();
  for (std::size_t i = 0; i < params.size(); ++i) params[i].second.copy_(saved[i]);
}

// ⟨A, B⟩ of two n × n f64 matrices.
double inner(const Tensor& a, const Tensor& b) {
  const double* p = a.data<double>();
  const double* q = b.data<double>();
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += p[i] * q[i];
  return s;
}

}  // namespace

nn::Sequential& NtkProbe::probe_model(const ProbeContext& c) const {
  return streamed_ && c.device_model ? *c.device_model : c.model;
}

NtkProbe::Measurement NtkProbe::measure(nn::Sequential& model, const Tensor& x) const {
  Measurement m;
  if (streamed_) {
    const auto params = model.parameters();
    m.factors = probe::kernel_factors(model, x.to(params.front().device()));
    for (const auto& l : m.factors.layers) m.layer_names.push_back(l.name);
    // Each layer's trace kernel once: its trace gives the layer's share, their sum the trace kernel.
    const auto layer_traces = probe::layer_trace_kernels(m.factors);
    for (const auto& t : layer_traces) m.layer_traces.push_back(probe::trace(t));
    m.trace = probe::add_kernels(layer_traces);
    m.output_gram = probe::output_gram(m.factors);
    return m;
  }
  probe::Ntk k = probe::empirical_ntk(model, x);
  m.layer_names = k.layer_names;
  m.layer_traces = k.layer_traces;
  m.kernel = k.kernel;
  m.trace = probe::trace_kernel(k.kernel, k.classes);
  m.output_gram = k.output_gram;
  m.rest = without_output_block(k.kernel, k.output_gram, k.classes);
  // Each norm once: it enters every distance of its step, and of the steps that compare with it.
  m.kernel_norm = probe::frobenius_norm(m.kernel);
  m.rest_norm = probe::frobenius_norm(m.rest);
  return m;
}

void NtkProbe::recover(const ProbeContext& c) {
  recovered_ = true;
  if (c.step == 0) return;
  // The previous probe step is the last one logged before this step (checkpoints alone cannot
  // tell: a stopped run also leaves one where it stopped).
  std::int64_t previous = -1;
  for (auto s : logged_steps(c.run_dir / "ntk.csv"))
    if (s < c.step) previous = s;
  for (auto [name, data] : {std::pair<const char*, const data::Dataset*>{"train", &c.probe_train}, {"test", &c.probe_test}}) {
    SetState& st = sets_[name];
    nn::Sequential& model = probe_model(c);
    auto compute = [&](std::int64_t step, Measurement& into) {
      with_checkpoint(model, c.checkpoints / fmt::format("step_{}.safetensors", step),
                      [&] { into = measure(model, data->images); });
    };
    compute(0, st.init);
    // Its ‖K‖², which the rest distance needs, is otherwise known only from the step that made it.
    if (streamed_)
      st.init.factors.norm2 = probe::compare_streamed(st.init.factors, std::vector<const probe::KernelFactors*>{}).norm2;
    st.have_init = true;
    if (previous >= 0) {
      compute(previous, st.previous);
      st.have_previous = true;
    }
  }
}

void NtkProbe::open_csv(const ProbeContext& c, const Measurement& first) {
  std::string header = "step,probe_set,distance_to_init,distance_to_previous,trace_distance_to_init,alignment,"
                       "output_distance_to_init,rest_distance_to_init";
  for (const auto& name : first.layer_names) header += ",share_" + name;
  csv_ = open_probe_csv(c.run_dir / "ntk.csv", header, c.step);
}

void NtkProbe::operator()(const ProbeContext& c) {
  if (!recovered_) {
    // Per probe set the probe holds four f32 kernels (init, previous, current and one in the
    // making) and two f64 kernels without their output block; past half the free memory it
    // keeps factors instead and streams.
    const double rows = static_cast<double>(std::max(c.probe_train.size(), c.probe_test.size()) * c.probe_train.classes);
    const double need = 2 * rows * rows * (4 * 4 + 2 * 8);
    const double free_bytes = static_cast<double>(probe::available_memory_bytes());
    const bool too_large = free_bytes > 0 && need > free_bytes / 2;
    // A run on a GPU keeps the probe there where it can: the factors are computed on the device
    // and each comparison's tiles built there, so no kernel is copied to the host. Held kernels
    // (probe.save_kernels writes them) are the cpu's.
    const bool on_device = c.device_model && !save_kernels_;
    streamed_ = force_streamed_ || too_large || on_device;
    if (too_large && !force_streamed_)
      fmt::print(stderr, "grokscope: the NTK probe's kernels would need {:.1f} GiB ({:.1f} GiB free): they are compared "
                 "streamed, from their factors (slower: each probe step forms the sums it needs anew)\n",
                 need / (1 << 30), free_bytes / (1 << 30));
    measured_off_cpu_ = &probe_model(c) != &c.model;
    if (measured_off_cpu_)
      fmt::print(stderr, "grokscope: the NTK probe computes and compares its streamed kernels on the {} device\n",
                 device_name(c.device_model->parameters().front().device()));
    recover(c);
  }
  for (auto [name, data] : {std::pair<const char*, const data::Dataset*>{"train", &c.probe_train}, {"test", &c.probe_test}}) {
    Measurement now = measure(probe_model(c), data->images);
    if (!csv_.is_open()) open_csv(c, now);
    SetState& st = sets_[name];
    const std::int64_t classes = data->classes;
    const double nan = std::nan("");
    double to_init = 0, to_previous = nan, rest_to_init = 0, alignment = nan;
    if (!streamed_) {
      if (!st.have_init) st.init = now;
      to_init = probe::kernel_distance(now.kernel, now.kernel_norm, st.init.kernel, st.init.kernel_norm);
      if (st.have_previous)
        to_previous = probe::kernel_distance(now.kernel, now.kernel_norm, st.previous.kernel, st.previous.kernel_norm);
      rest_to_init = probe::kernel_distance(now.rest, now.rest_norm, st.init.rest, st.init.rest_norm);
      alignment = probe::kernel_alignment(now.kernel, data->labels, classes, now.kernel_norm);
    } else {
      std::vector<const probe::KernelFactors*> refs;
      if (st.have_init) refs.push_back(&st.init.factors);
      if (st.have_previous) refs.push_back(&st.previous.factors);
      const auto sums = probe::compare_streamed(now.factors, refs);
      now.factors.norm2 = sums.norm2;  // kept, also for when these factors are a reference
      if (!st.have_init) st.init = now;
      auto cosine_distance = [](double ab, double aa, double bb) { return 1.0 - ab / std::sqrt(aa * bb); };
      if (!refs.empty()) {
        to_init = cosine_distance(sums.inner[0], sums.norm2, sums.norm2_ref[0]);
        if (st.have_previous) to_previous = cosine_distance(sums.inner[1], sums.norm2, sums.norm2_ref[1]);
        // K − L with L = output_gram ⊗ I: ⟨K, L′⟩ = ⟨trace(K), L′⟩ and ⟨L, L′⟩ = C ⟨G, G′⟩.
        const Tensor &t = now.trace, &t0 = st.init.trace, &g = now.output_gram, &g0 = st.init.output_gram;
        const double cd = static_cast<double>(classes);
        const double rr = now.factors.norm2 - 2 * inner(t, g) + cd * inner(g, g);
        const double r0 = st.init.factors.norm2 - 2 * inner(t0, g0) + cd * inner(g0, g0);
        const double rr0 = sums.inner[0] - inner(t, g0) - inner(t0, g) + cd * inner(g, g0);
        rest_to_init = cosine_distance(rr0, rr, r0);
      }
      double yy = 0;
      for (auto y : data->labels.to_int_vector())
        for (std::int64_t a = 0; a < classes; ++a) yy += std::pow((y == a ? 1.0 : 0.0) - 1.0 / static_cast<double>(classes), 2);
      alignment = probe::target_quadratic_form(now.factors, data->labels) / (std::sqrt(now.factors.norm2) * yy);
    }
    st.have_init = true;
    const double trace_to_init = probe::kernel_distance(now.trace, st.init.trace);
    const double output_to_init = probe::kernel_distance(now.output_gram, st.init.output_gram);
    double total_trace = 0;
    for (double t : now.layer_traces) total_trace += t;
    // A kernel that is zero (all of the network's hidden units dead, say) has no direction: its
    // distances are NaN, and the run goes on logging them.
    if (!said_undefined_ && (std::isnan(to_init) || std::isnan(trace_to_init) || std::isnan(rest_to_init))) {
      fmt::print(stderr, "grokscope: step {}: the NTK on the {} probe set (or its part before the output layer) is zero, "
                 "as when every hidden unit has died: its distances are logged as NaN\n", c.step, name);
      said_undefined_ = true;
    }
    std::string row = fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g}", c.step, name, to_init, to_previous,
                                  trace_to_init, alignment, output_to_init, rest_to_init);
    for (double t : now.layer_traces) row += fmt::format(",{:.6g}", t / total_trace);
    csv_ << row << "\n";
    if (save_kernels_ && !streamed_) {
      io::make_directories(c.run_dir / "ntk_kernels", "check that the run directory is writable, or set probe.save_kernels = false");
      io::save_npy(c.run_dir / "ntk_kernels" / fmt::format("step_{}_{}.npy", c.step, name), now.kernel);
    }
    st.previous = std::move(now);
    st.have_previous = true;
  }
  flush_checked(csv_, c.run_dir / "ntk.csv");
  if (c.final_step) write_pairwise(c);
}

void NtkProbe::write_pairwise(const ProbeContext& c) {
  const auto steps = logged_steps(c.run_dir / "ntk.csv");
  const auto count = static_cast<std::int64_t>(steps.size());
  const std::int64_t rows = c.probe_train.size() * c.probe_train.classes;
  const double bytes = static_cast<double>(count) * static_cast<double>(rows * rows) * 4.0;
  if (bytes > 8.0 * (1 << 30)) {  // all kernels are held at once
    fmt::print(stderr, "grokscope: ntk pairwise matrix skipped: {} kernels of {} rows would need {:.1f} GiB\n", count, rows,
               bytes / (1 << 30));
    return;
  }
  std::vector<std::int32_t> step_ids(steps.begin(), steps.end());
  io::save_npy(c.run_dir / "ntk_pairwise_steps.npy", Tensor::from(step_ids, Shape{count}));
  for (auto [name, data] : {std::pair<const char*, const data::Dataset*>{"train", &c.probe_train}, {"test", &c.probe_test}}) {
    std::vector<Tensor> kernels;
    for (auto s : steps)
      with_checkpoint(c.model, c.checkpoints / fmt::format("step_{}.safetensors", s),
                      [&] { kernels.push_back(probe::empirical_ntk(c.model, data->images).kernel); });
    // Each norm once, not once per pair: a third of the passes over the kernels.
    std::vector<double> norms;
    for (const auto& k : kernels) norms.push_back(probe::frobenius_norm(k));
    const std::vector<double> d = probe::kernel_distances(kernels, norms);
    io::save_npy(c.run_dir / fmt::format("ntk_pairwise_{}.npy", name), Tensor::from(d, Shape{count, count}, DType::f64));
  }
}

}  // namespace gs::experiments
