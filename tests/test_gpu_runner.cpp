// A whole run trained on the cuda device (probes included, which read a CPU copy of the weights)
// against the same run on the CPU: what a researcher gets from `grokscope train --device cuda`.
#include <nlohmann/json.hpp>

#include "experiments/geometry_probe.h"
#include "experiments/ntk_probe.h"
#include "experiments/runner.h"
#include "helpers.h"
#include "temp_dir.h"
#include "tiny_run.h"

using namespace gs;
using namespace gs::experiments;

namespace {

void train_tiny(const Recipe& recipe, const std::filesystem::path& out, Device device, std::int64_t stop_after = -1) {
  RunOptions options{out, {}, true, stop_after};
  options.device = device;
  Runner runner = stop_after < 0 && std::filesystem::exists(out / "ckpt" / "resume.safetensors")
                      ? Runner::resume(out, options)
                      : Runner(recipe, options);
  auto ntk = std::make_shared<NtkProbe>();
  runner.add_probe("ntk", [ntk](const ProbeContext& c) { (*ntk)(c); });
  auto geometry = std::make_shared<GeometryProbe>(0.0, 50, recipe.train.seed);
  runner.add_probe("geometry", [geometry](const ProbeContext& c) { (*geometry)(c); });
  runner.run();
}

// Every numeric cell of two CSV files of the same shape agrees to a relative `tolerance`.
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
      if (end == x[r][c].c_str() || x[r][c] == "nan") {  // text, or no value
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
    train_tiny(recipe, dir / "cpu", Device::cpu);
    train_tiny(recipe, dir / "cuda", Device::cuda);
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
}
