// A whole run trained on the cuda device against the same run on the CPU: what a researcher gets
// from `grokscope train --device cuda`. The probes are included; the NTK probe and the geometry
// probe run on the device too.
#include <nlohmann/json.hpp>

#include <algorithm>

#if defined(GROKSCOPE_CUDA_EMULATED)
#include <cuda_runtime.h>  // the emulator's (kernels/cuda/emulator/), for its fault injection
#endif

#include "experiments/geometry_probe.h"
#include "experiments/ntk_probe.h"
#include "experiments/probe_command.h"
#include "experiments/probes.h"
#include "experiments/runner.h"
#include "helpers.h"
#include "kernels/gemm.h"
#include "temp_dir.h"
#include "tiny_run.h"

using namespace gs;
using namespace gs::experiments;

namespace {

struct TinyRun {
  std::int64_t stop_after = -1;
  bool step_graph = true;
  bool streamed_ntk = false;  // force the NTK probe's factor path (an MLP's run on a GPU takes it anyway)
  bool save_kernels = false;  // probe.save_kernels: held kernels, written as .npy
  bool center_structure = true;  // the geometry probe's step 2
  Device* geometry_device = nullptr;  // out: where the geometry probe's last analysis ran
  bool tf32 = false;                  // the training steps' GEMMs and convolutions in TF32
  bool probes = true;                 // the NTK and geometry probes (most of a CNN's emulated run)
  // out: the GEMM precision pinned while each probe step's hooks ran
  std::vector<kernels::GemmPrecision>* probe_precisions = nullptr;
};

// Returns whether the NTK probe computed its factors on the device.
bool train_tiny(const Recipe& recipe, const std::filesystem::path& out, Device device, const TinyRun& how) {
  const std::int64_t stop_after = how.stop_after;
  const bool step_graph = how.step_graph;
  RunOptions options{out, {}, true, stop_after};
  options.device = device;
  options.step_graph = step_graph;
  options.tf32 = how.tf32;
  Runner runner = stop_after < 0 && std::filesystem::exists(out / "ckpt" / "resume.safetensors")
                      ? Runner::resume(out, options)
                      : Runner(recipe, options);
  auto ntk = std::make_shared<NtkProbe>(how.save_kernels, how.streamed_ntk);
  auto geometry = std::make_shared<GeometryProbe>(0.0, 50, recipe.train.seed,
                                                  how.center_structure ? probe::CenterRemoval{} : probe::CenterRemoval::none());
  if (how.probes) {
    runner.add_probe("ntk", [ntk](const ProbeContext& c) { (*ntk)(c); });
    runner.add_probe("geometry", [geometry](const ProbeContext& c) { (*geometry)(c); });
  }
  if (how.probe_precisions)
    runner.add_probe("precision", [&how](const ProbeContext&) { how.probe_precisions->push_back(kernels::gemm_precision()); });
  runner.run();
  if (how.geometry_device) *how.geometry_device = geometry->last_device();
  return ntk->measured_off_cpu();
}

void train_tiny(const Recipe& recipe, const std::filesystem::path& out, Device device, std::int64_t stop_after = -1,
                bool step_graph = true) {
  train_tiny(recipe, out, device, TinyRun{stop_after, step_graph, false, false});
}

// Every numeric cell of two CSV files of the same shape agrees to a relative `tolerance` (0: the
// same text, so the same value to the digits written).
void check_same_csv(const std::filesystem::path& a, const std::filesystem::path& b, double tolerance,
                    const std::string& skip_column = "") {
  auto x = test::read_csv(a), y = test::read_csv(b);
  REQUIRE(x.size() == y.size());
  REQUIRE(x.size() > 1);
  CHECK(x[0] == y[0]);
  for (std::size_t r = 1; r < x.size(); ++r) {
    REQUIRE(x[r].size() == y[r].size());
    for (std::size_t c = 0; c < x[r].size(); ++c) {
      if (x[0][c] == skip_column) continue;
      CAPTURE(a.filename().string());
      CAPTURE(r);
      CAPTURE(x[0][c]);
      char* end = nullptr;
      const double u = std::strtod(x[r][c].c_str(), &end);
      if (end == x[r][c].c_str() || x[r][c] == "nan" || tolerance == 0) {  // text, no value, or exactly equal
        CHECK(x[r][c] == y[r][c]);
        continue;
      }
      CHECK(std::stod(y[r][c]) == doctest::Approx(u).epsilon(tolerance).scale(1e-6));
    }
  }
}

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("a run trained on the GPU logs what the same run on the CPU logs, probes included") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    const Recipe recipe = test::tiny_recipe(dir.path(), 40);
    // Without the center structure's removal: its search can end at another subspace after a
    // change of the activations at rounding level. On these 4-class layers of 16 points, the f32
    // rounding of a device that fuses multiply-adds moved it on two layers of 30,
    // and with it a capacity by 2% and a radius by 22%. The center structure is a host computation
    // from the class centers, checked on the same activations on both devices in test_gpu.cpp.
    Device geometry_on = Device::cuda;
    train_tiny(recipe, dir / "cpu", Device::cpu, TinyRun{.center_structure = false, .geometry_device = &geometry_on});
    CHECK(geometry_on == Device::cpu);
    train_tiny(recipe, dir / "cuda", Device::cuda, TinyRun{.center_structure = false, .geometry_device = &geometry_on});
    CHECK(geometry_on == Device::cuda);  // the activations and their analysis stay on the device
    // f32 sums in another order: the losses and norms drift apart by rounding, nothing more.
    check_same_csv(dir / "cpu" / "metrics.csv", dir / "cuda" / "metrics.csv", 1e-4, "seconds");
    check_same_csv(dir / "cpu" / "ntk.csv", dir / "cuda" / "ntk.csv", 1e-3);
    check_same_csv(dir / "cpu" / "geometry.csv", dir / "cuda" / "geometry.csv", 1e-3);
    auto info = nlohmann::json::parse(std::ifstream(dir / "cuda" / "run.json"));
    CHECK(info["device"] == "cuda");

    // Stopped on the GPU and resumed on the GPU: the same rows as the unstopped GPU run.
    train_tiny(recipe, dir / "part", Device::cuda, 12);
    train_tiny(recipe, dir / "part", Device::cuda);
    check_same_csv(dir / "cuda" / "metrics.csv", dir / "part" / "metrics.csv", 1e-6, "seconds");
  }

  // `train --device cuda --tf32`: the training steps' products in TF32 on the tensor
  // cores, the evaluations and probes in FP32. The run learns as the FP32 run does, its numbers
  // apart by TF32's rounding, not FP32's.
  TEST_CASE("a run trained with TF32 products learns as the FP32 run does, and its probes multiply in FP32") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    const Recipe recipe = test::tiny_recipe(dir.path(), 40);
    train_tiny(recipe, dir / "fp32", Device::cuda, TinyRun{.center_structure = false});
#if defined(GROKSCOPE_CUDA_EMULATED)
    gs::cuda_emulator::record_launches(true);
#endif
    std::vector<kernels::GemmPrecision> during_probes;
    train_tiny(recipe, dir / "tf32", Device::cuda, TinyRun{.center_structure = false, .tf32 = true, .probe_precisions = &during_probes});
    CHECK(kernels::gemm_precision() == kernels::GemmPrecision::fp32);  // put back after the run
    REQUIRE_FALSE(during_probes.empty());
    for (auto p : during_probes) CHECK(p == kernels::GemmPrecision::fp32);
#if defined(GROKSCOPE_CUDA_EMULATED)
    const auto launches = gs::cuda_emulator::recorded_launches();
    gs::cuda_emulator::record_launches(false);
    auto count = [&](const std::string& prefix) {
      return std::count_if(launches.begin(), launches.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
    };
    CHECK(count("gemm_bias_act (64 × 64 TF32 tensor-core tiles") > 0);  // the steps
    CHECK(count("dense_backward (64 × 64 TF32 tensor-core tiles") > 0);
    CHECK(count("gemm_bias_act (64 × 64 tiles") > 0);  // the evaluations
#endif
    auto info = nlohmann::json::parse(std::ifstream(dir / "tf32" / "run.json"));
    CHECK(info["training_precision"] == "tf32");
    CHECK(nlohmann::json::parse(std::ifstream(dir / "fp32" / "run.json"))["training_precision"] == "fp32");
    // The step-0 rows are the same network's; later ones apart by TF32's rounding through 40
    // steps (allowed 1e-3), and not the FP32 run's to the digit.
    check_same_csv(dir / "fp32" / "metrics.csv", dir / "tf32" / "metrics.csv", 1e-3, "seconds");
    const auto fp32_rows = test::read_csv(dir / "fp32" / "metrics.csv"), tf32_rows = test::read_csv(dir / "tf32" / "metrics.csv");
    const auto seconds = std::find(fp32_rows[0].begin(), fp32_rows[0].end(), "seconds") - fp32_rows[0].begin();
    auto logged = [&](std::vector<std::string> row) {  // a row's numbers but its time
      row.erase(row.begin() + seconds);
      return row;
    };
    CHECK(logged(fp32_rows[1]) == logged(tf32_rows[1]));
    CHECK(logged(fp32_rows.back()) != logged(tf32_rows.back()));
  }

  // The CNN's convolutions take the tensor cores under --tf32 as its dense layers do: the study's
  // CNN, on the tiny run's 4 × 4 images (each convolution pooled to half its side).
  TEST_CASE("a CNN trained with TF32 convolves on the tensor cores in its steps and in FP32 elsewhere") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    Recipe recipe = test::tiny_recipe(dir.path(), 20);
    recipe.model.kind = "cnn";
    // No probes: their precision is the MLP case's check above, and they were most of the time.
    train_tiny(recipe, dir / "fp32", Device::cuda, TinyRun{.probes = false});
#if defined(GROKSCOPE_CUDA_EMULATED)
    gs::cuda_emulator::record_launches(true);
#endif
    train_tiny(recipe, dir / "tf32", Device::cuda, TinyRun{.tf32 = true, .probes = false});
#if defined(GROKSCOPE_CUDA_EMULATED)
    const auto launches = gs::cuda_emulator::recorded_launches();
    gs::cuda_emulator::record_launches(false);
    auto count = [&](const std::string& prefix) {
      return std::count_if(launches.begin(), launches.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
    };
    for (const std::string pass : {"conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight"}) {  // the steps
      CAPTURE(pass);
      CHECK(count(pass + " (64 × 64 TF32 tensor-core tiles") > 0);
    }
    CHECK(count("conv2d_forward (64 × 64 tiles") > 0);  // the evaluations
#endif
    // Step 0 is the same network evaluated in FP32 both times: the same row. TF32's rounding then
    // compounds through the steps of a CNN that learns this fast (on the emulator its losses are
    // 1.5% from FP32's at step 3 and 10 to 40% apart later, both below 0.15; a train accuracy
    // differs by 3 of 64 images at two steps), so the runs are held to learning alike: the weight
    // norms within 1% at every step (0.2% on the emulator), and both runs fitting, train and test.
    const auto fp32 = test::read_csv(dir / "fp32" / "metrics.csv"), tf32 = test::read_csv(dir / "tf32" / "metrics.csv");
    REQUIRE(fp32.size() == tf32.size());
    REQUIRE(fp32.size() > 2);
    auto value = [&](const std::vector<std::vector<std::string>>& rows, std::size_t r, const std::string& column) {
      const auto c = std::find(rows[0].begin(), rows[0].end(), column) - rows[0].begin();
      REQUIRE(static_cast<std::size_t>(c) < rows[0].size());
      return std::stod(rows[r][static_cast<std::size_t>(c)]);
    };
    for (const std::string column : {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_norm"}) {
      CAPTURE(column);
      CHECK(value(tf32, 1, column) == value(fp32, 1, column));
    }
    for (std::size_t r = 1; r < fp32.size(); ++r)
      for (const std::string column : {"weight_norm", "output_weight_norm"}) {
        CAPTURE(r);
        CAPTURE(column);
        CHECK(value(tf32, r, column) == doctest::Approx(value(fp32, r, column)).epsilon(0.01));
      }
    for (const auto* rows : {&fp32, &tf32}) {
      const std::size_t last = rows->size() - 1;
      CHECK(value(*rows, last, "train_accuracy") == 1.0);
      CHECK(value(*rows, last, "test_accuracy") == 1.0);
      CHECK(value(*rows, last, "train_loss") < 0.05);
    }
  }

#if defined(GROKSCOPE_CUDA_EMULATED)
  // A kernel's fault on a GPU is sticky: every later call fails, until the process ends. The
  // emulator injects one partway through a device run, which must stop as "failed", keep what it
  // logged and resume (on a GPU in a new process; here once the fault is cleared) to what an
  // unfailed run logs.
  TEST_CASE("a device fault partway through a run stops it as failed, and it resumes to what an unfailed run logs") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    const Recipe recipe = test::tiny_recipe(dir.path(), 40);
    train_tiny(recipe, dir / "whole", Device::cuda);
    struct Clear {
      ~Clear() { gs::cuda_emulator::clear_fault(); }
    } clear;
    gs::cuda_emulator::inject_fault(1500);
    std::string said;
    try {
      train_tiny(recipe, dir / "part", Device::cuda);
    } catch (const Error& e) {
      said = e.what();
    }
    gs::cuda_emulator::clear_fault();
    CAPTURE(said);
    CHECK(said.find("an illegal memory access was encountered in") != std::string::npos);
    CHECK(said.find("grokscope train --resume") != std::string::npos);
    auto info = nlohmann::json::parse(std::ifstream(dir / "part" / "run.json"));
    CHECK(info["status"] == "failed");
    CHECK(info["last_step"].get<std::int64_t>() > 0);  // partway: the 1500th kernel falls in step 16 of 40
    REQUIRE(info["failures"].size() == 1);
    CHECK(info["failures"][0]["error"].get<std::string>().find("illegal memory access") != std::string::npos);
    train_tiny(recipe, dir / "part", Device::cuda);  // resumes from its last probe step
    check_same_csv(dir / "whole" / "metrics.csv", dir / "part" / "metrics.csv", 1e-6, "seconds");
    check_same_csv(dir / "whole" / "ntk.csv", dir / "part" / "ntk.csv", 1e-6);
    check_same_csv(dir / "whole" / "geometry.csv", dir / "part" / "geometry.csv", 1e-6);
  }
#endif

  // A GPU run reads its losses back 64 steps at a time (experiments/step_queue.h), yet stops
  // naming the step whose loss first went bad, as the CPU run does. Weights ×1e15 make the MSE
  // overflow at step 1 on both devices; the next check of the queued losses is 63 steps later.
  TEST_CASE("a diverging run on the GPU names the step the CPU run names") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    const Recipe recipe = parse_recipe(test::tiny_recipe(dir.path(), 200).to_toml(), "wild.toml",
                                       {"model.init_scale=1e15", "train.loss=\"mse\"", "schedule.metrics=\"every\"",
                                        "schedule.metric_every=1000", "schedule.probe_steps=[0]"});
    std::string said[2];
    for (Device device : {Device::cpu, Device::cuda}) {
      try {
        train_tiny(recipe, dir / device_name(device), device);
      } catch (const Error& e) {
        said[device == Device::cuda] = e.what();
      }
      auto info = nlohmann::json::parse(std::ifstream(dir / device_name(device) / "run.json"));
      CHECK(info["status"] == "diverged");
    }
    CAPTURE(said[0]);
    CAPTURE(said[1]);
    CHECK(said[0].find("step 1: the training loss is inf") != std::string::npos);
    CHECK(said[1].find("step 1: the training loss is inf") != std::string::npos);
  }

  // 64 training rows in batches of 24: two batch shapes, so two graphs, each replayed after one
  // eager step. Replays run the eager steps' kernels on the same data: every cell is identical.
  TEST_CASE("a run whose training step is replayed as CUDA graphs logs exactly what a kernel-by-kernel run logs") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    for (const std::string optimizer : {"sgd", "adamw"}) {
      CAPTURE(optimizer);
      Recipe recipe = test::tiny_recipe(dir.path(), 30);
      recipe.train.batch_size = 24;
      recipe.optimizer.name = optimizer;
      recipe.optimizer.momentum = recipe.optimizer.name == "sgd" ? 0.9 : 0;
      const auto out = dir / optimizer;
      train_tiny(recipe, out / "graph", Device::cuda);
      train_tiny(recipe, out / "eager", Device::cuda, -1, false);
      check_same_csv(out / "graph" / "metrics.csv", out / "eager" / "metrics.csv", 0, "seconds");
      check_same_csv(out / "graph" / "ntk.csv", out / "eager" / "ntk.csv", 0);
      auto graph_info = nlohmann::json::parse(std::ifstream(out / "graph" / "run.json"));
      auto eager_info = nlohmann::json::parse(std::ifstream(out / "eager" / "run.json"));
      const std::string described = graph_info["training_step"];
      CAPTURE(described);
      CHECK(described.find("one CUDA graph per batch shape") == 0);
      CHECK(described.find("batch 16: ") != std::string::npos);
      CHECK(described.find("batch 24: ") != std::string::npos);
      CHECK(eager_info["training_step"] == "kernel by kernel (--no-graph)");

      // Stopped and resumed with graphs: the optimizer's step count was kept through the replays,
      // the resumed process captures again, and the rows are the same.
      train_tiny(recipe, out / "part", Device::cuda, 13);
      train_tiny(recipe, out / "part", Device::cuda);
      check_same_csv(out / "graph" / "metrics.csv", out / "part" / "metrics.csv", 0, "seconds");
    }
  }

  // A run trained on the GPU keeps its NTK probe there: the factors of the device's weights, each
  // comparison's tiles built on the device; the numbers are the CPU's (held or streamed).
  TEST_CASE("the NTK probe of a run on the GPU runs there and logs what the CPU's logs") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    const Recipe recipe = test::tiny_recipe(dir.path(), 30);
    CHECK_FALSE(train_tiny(recipe, dir / "cpu", Device::cpu, TinyRun{}));
    CHECK_FALSE(train_tiny(recipe, dir / "cpu_streamed", Device::cpu, TinyRun{-1, true, true, false}));
    CHECK(train_tiny(recipe, dir / "cuda", Device::cuda, TinyRun{}));
    check_same_csv(dir / "cpu" / "ntk.csv", dir / "cuda" / "ntk.csv", 1e-3);
    check_same_csv(dir / "cpu_streamed" / "ntk.csv", dir / "cuda" / "ntk.csv", 1e-3);
    // Asked to save its kernels, the probe holds them on the cpu and writes them.
    CHECK_FALSE(train_tiny(recipe, dir / "held", Device::cuda, TinyRun{-1, true, false, true}));
    CHECK(std::filesystem::exists(dir / "held" / "ntk_kernels" / "step_0_train.npy"));
    check_same_csv(dir / "cpu" / "ntk.csv", dir / "held" / "ntk.csv", 1e-3);
    // Resumed on the device: the step-0 and previous kernels are rebuilt there from checkpoints.
    CHECK(train_tiny(recipe, dir / "part", Device::cuda, TinyRun{11, true, false, false}));
    CHECK(train_tiny(recipe, dir / "part", Device::cuda, TinyRun{}));
    check_same_csv(dir / "cuda" / "ntk.csv", dir / "part" / "ntk.csv", 1e-6);
  }

  // `grokscope probe --device cuda`: a CPU run's checkpoints probed on the device log what the
  // CPU's probe of them logs (without the center structure's search, as above).
  TEST_CASE("probing a run's checkpoints on the GPU logs what probing them on the CPU logs") {
    test::TempDir dir;
    test::write_tiny_mnist(dir.path(), 64, 24);
    const Recipe recipe = test::tiny_recipe(dir.path(), 30);
    Runner runner(recipe, {dir / "run", {}, true});
    for (auto& [name, hook] : recipe_probes(recipe)) runner.add_probe(name, hook);
    REQUIRE(runner.run() == 0);
    const std::vector<std::string> sets = {"probe.geometry_center_structure=false", "probe.geometry_n_t=50"};
    REQUIRE(run_probe_command({dir / "run", dir / "on_cpu", sets, Device::cpu, true, {}}) == 0);
    REQUIRE(run_probe_command({dir / "run", dir / "on_cuda", sets, Device::cuda, true, {}}) == 0);
    check_same_csv(dir / "on_cpu" / "ntk.csv", dir / "on_cuda" / "ntk.csv", 1e-3);
    check_same_csv(dir / "on_cpu" / "geometry.csv", dir / "on_cuda" / "geometry.csv", 1e-3);
    CHECK(nlohmann::json::parse(std::ifstream(dir / "on_cuda" / "run.json"))["probe_device"] == "cuda");
  }
}
