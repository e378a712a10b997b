// The training runner end to end on a small IDX dataset the test writes: the run directory's
// files, the schedules, step 0's checkpoint being the real initial weights, divergence and
// refusal to overwrite; and, where data/cache/mnist exists, a short run on real MNIST.
#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/idx.h"
#include "engine/io/files.h"
#include "engine/io/npy.h"
#include "engine/io/safetensors.h"
#include "experiments/geometry_probe.h"
#include "experiments/ntk_probe.h"
#include "experiments/probe_command.h"
#include "experiments/probe_csv.h"
#include "experiments/probes.h"
#include "experiments/report.h"
#include "experiments/runner.h"
#include "experiments/schedule.h"
#include "helpers.h"
#include "models/models.h"
#include "temp_dir.h"
#include "tiny_run.h"

using namespace gs;
using namespace gs::experiments;
using gs::test::read_csv;
using gs::test::tiny_recipe;
using gs::test::write_tiny_mnist;

TEST_SUITE("runner") {
  // A recipe can kill every hidden unit (here one ReLU unit and a large step): the NTK's hidden
  // part and the geometry of the dead layers are then undefined. The run goes on to its end and
  // logs NaN for them, instead of stopping at the first probe step after the death.
  TEST_CASE("a run whose hidden units all die finishes, logging NaN for what is undefined") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 40);
    Recipe recipe = parse_recipe(tiny_recipe(dir.path(), 40).to_toml(), "dying.toml", {"optimizer.lr=0.3", "model.widths=[16, 1, 10]"});
    Runner runner(recipe, RunOptions{dir / "run", {"grokscope", "train"}, true});
    auto ntk = std::make_shared<NtkProbe>();
    runner.add_probe("ntk", [ntk](const ProbeContext& c) { (*ntk)(c); });
    auto geometry = std::make_shared<GeometryProbe>(0.0, 20, 1);
    runner.add_probe("geometry", [geometry](const ProbeContext& c) { (*geometry)(c); });
    REQUIRE(runner.run() == 0);
    CHECK(nlohmann::json::parse(std::ifstream(dir / "run" / "run.json"))["status"] == "finished");
    const auto geo = read_csv(dir / "run" / "geometry.csv");
    REQUIRE(geo.size() > 1);
    int undefined = 0;
    for (std::size_t r = 1; r < geo.size(); ++r) {
      CAPTURE(geo[r][0]);
      CAPTURE(geo[r][1]);
      if (geo[r][0] == "0" || geo[r][1] == "input") {
        CHECK(geo[r][2] != "nan");  // before the death, and the input always: defined
      } else if (geo[r][2] == "nan") {
        ++undefined;
        for (int col = 3; col <= 6; ++col) CHECK(geo[r][static_cast<std::size_t>(col)] == "nan");
      }
    }
    CHECK(undefined >= 3);  // the dead layer and the two after it, at least at one step
    const auto k = read_csv(dir / "run" / "ntk.csv");
    REQUIRE(k.size() > 3);
    CHECK(k[0][7] == "rest_distance_to_init");
    CHECK(k.back()[7] == "nan");  // the kernel before the output layer is zero
    CHECK(std::isfinite(std::stod(k.back()[2])));  // the output layer's part keeps the kernel defined
    CHECK(std::filesystem::exists(dir / "run" / "ntk_pairwise_train.npy"));
  }

  // The geometry probe computes the input layer once and repeats its row; the repeat must equal
  // a fresh analysis, and a probe set with other images or labels must be analysed anew.
  TEST_CASE("the geometry probe's input-layer row equals a fresh analysis, for every probe set it is given") {
    test::TempDir dir;
    Generator gen(3);
    auto model = models::make_mlp({{12, 6, 3}, nn::Activation::relu, 1.0, 1.0, DType::f32}, gen);
    auto dataset = [](std::uint64_t seed, std::vector<std::int32_t> labels) {
      const auto n = static_cast<std::int64_t>(labels.size());
      return data::Dataset{"probe", test::random_tensor(Shape{n, 1, 3, 4}, seed, DType::f32), Tensor::from(labels, Shape{n}), 3};
    };
    const std::vector<std::int32_t> labels{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
    std::vector<std::int32_t> relabelled = labels;
    std::swap(relabelled[0], relabelled[1]);
    const data::Dataset first = dataset(1, labels), other_images = dataset(2, labels), other_labels = dataset(1, relabelled);
    GeometryProbe probe(0.0, 30, 7);
    const std::vector<const data::Dataset*> sets{&first, &first, &other_images, &other_images, &other_labels, &first};
    for (std::size_t i = 0; i < sets.size(); ++i)
      probe(ProbeContext{static_cast<std::int64_t>(i), *model, first, first, *sets[i], dir.path(), dir.path()});
    const auto rows = read_csv(dir / "geometry.csv");
    std::vector<std::vector<std::string>> input_rows;
    for (const auto& r : rows)
      if (r[1] == "input") input_rows.push_back(r);
    REQUIRE(input_rows.size() == sets.size());
    for (std::size_t i = 0; i < sets.size(); ++i) {
      CAPTURE(i);
      const data::Dataset& set = *sets[i];
      const auto want = probe::analyze_layer(set.images.view(Shape{set.size(), 12}), set.labels.to_int_vector(), 3, 0.0, 30, 7);
      CHECK(input_rows[i][2] == fmt::format("{:.9g}", want.capacity));
      CHECK(input_rows[i][4] == fmt::format("{:.9g}", want.radius));
      CHECK(input_rows[i][5] == fmt::format("{:.9g}", want.dimension));
    }
    CHECK(input_rows[2][2] != input_rows[0][2]);  // the sets do differ in what they give
    CHECK(input_rows[4][2] != input_rows[0][2]);
  }

  TEST_CASE("a run writes recipe, run.json, metrics on schedule and checkpoints at the probe steps") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 40);
    Recipe recipe = tiny_recipe(dir.path(), 60);
    RunOptions options{dir / "run", {"grokscope", "train"}, true};
    Runner runner(recipe, options);
    std::vector<std::int64_t> probed;
    runner.add_probe("record", [&](const ProbeContext& c) {
      probed.push_back(c.step);
      CHECK(c.probe_train.size() == 8);
      CHECK(c.probe_test.size() == 8);
    });
    REQUIRE(runner.run() == 0);

    auto rows = read_csv(dir / "run" / "metrics.csv");
    REQUIRE(rows.size() >= 2);
    CHECK(rows[0][0] == "step");
    CHECK(rows[0].size() == 9);
    std::vector<std::int64_t> steps;
    for (std::size_t i = 1; i < rows.size(); ++i) steps.push_back(std::stoll(rows[i][0]));
    CHECK(steps == study_metric_steps(60, 150));
    CHECK(std::stod(rows.back()[3]) == 1.0);  // train accuracy: the task is easy
    CHECK(std::stod(rows.back()[5]) > 0.9);   // and it generalizes

    const auto probe_steps = log_spaced_steps(60, 5);
    CHECK(probed == probe_steps);
    for (auto s : probe_steps) CHECK(std::filesystem::exists(dir / "run" / "ckpt" / ("step_" + std::to_string(s) + ".safetensors")));

    auto info = nlohmann::json::parse(std::ifstream(dir / "run" / "run.json"));
    CHECK(info["status"] == "finished");
    CHECK(info["last_step"] == 60);
    CHECK(info["cpu"].get<std::string>().find("; OpenMP threads: ") != std::string::npos);  // for reading its timings
    // Where the time went: every part, none negative, together no more than the whole.
    const auto& seconds = info["seconds"];
    double parts = 0;
    for (const char* part : {"training", "evaluation", "checkpoints", "record_probe"}) {
      CAPTURE(part);
      REQUIRE(seconds.contains(part));
      CHECK(seconds[part].get<double>() >= 0);
      parts += seconds[part].get<double>();
    }
    CHECK(seconds["training"].get<double>() > 0);
    CHECK(parts <= seconds["total"].get<double>() + 1e-6);
    CHECK(runner.total_seconds() == doctest::Approx(seconds["total"].get<double>()));
    CHECK(runner.time_split().summary(runner.total_seconds()).find("training ") != std::string::npos);
    CHECK(parse_recipe(std::string(std::istreambuf_iterator<char>(std::ifstream(dir / "run" / "recipe.toml").rdbuf()), {}),
                       "resolved")
              .to_toml() == recipe.to_toml());

    // Step 0 is the model as initialized from the seed, named as PyTorch names it.
    Generator gen(recipe.train.seed, Stream::init);
    auto fresh = models::make_mlp({{16, 12, 10}, nn::Activation::relu, 2.0, 1.0}, gen);
    auto ckpt = io::load_safetensors(dir / "run" / "ckpt" / "step_0.safetensors");
    auto expected = fresh->named_parameters("layers.");
    REQUIRE(ckpt.tensors.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CHECK(ckpt.tensors[i].first == expected[i].first);
      CHECK(ckpt.tensors[i].second.to_vector() == expected[i].second.to_vector());
    }
    CHECK(ckpt.metadata.at("step") == "0");
    auto last = io::load_safetensors(dir / "run" / "ckpt" / "step_60.safetensors");
    CHECK(last.tensors[0].second.to_vector() != expected[0].second.to_vector());

    // The same recipe and seed give the same numbers.
    Runner again(recipe, RunOptions{dir / "run2", {}, true});
    REQUIRE(again.run() == 0);
    CHECK(read_csv(dir / "run2" / "metrics.csv").back() [3] == rows.back()[3]);
    auto r1 = read_csv(dir / "run" / "metrics.csv"), r2 = read_csv(dir / "run2" / "metrics.csv");
    for (std::size_t i = 0; i < r1.size(); ++i)
      for (std::size_t j = 0; j + 1 < r1[i].size(); ++j) CHECK(r1[i][j] == r2[i][j]);  // all but the wall time
  }

  TEST_CASE("an existing run is not overwritten; a diverging run names the step and the last checkpoint") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 16);
    Recipe recipe = tiny_recipe(dir.path(), 5);
    REQUIRE(Runner(recipe, {dir / "run", {}, true}).run() == 0);
    CHECK_THROWS_WITH_AS(Runner(recipe, {dir / "run", {}, true}).run(), doctest::Contains("already holds a run"), Error);

    Recipe wild = parse_recipe(recipe.to_toml(), "wild.toml", {"model.init_scale=1e30", "train.loss=\"mse\""});
    CHECK_THROWS_WITH_AS(Runner(wild, {dir / "wild", {}, true}).run(), doctest::Contains("the last good checkpoint is"), Error);
    auto info = nlohmann::json::parse(std::ifstream(dir / "wild" / "run.json"));
    CHECK(info["status"] == "diverged");
  }

  TEST_CASE("checkpoints for another architecture are refused, naming the tensor and both shapes") {
    test::TempDir dir;
    Generator g1(1), g2(1);
    auto net = models::make_mlp({{16, 12, 10}}, g1);
    auto other = models::make_mlp({{16, 8, 10}}, g2);
    io::save_safetensors(dir / "other.safetensors", other->named_parameters("layers."));
    CHECK_THROWS_WITH_AS(load_checkpoint(*net, dir / "other.safetensors"),
                         doctest::Contains("tensor 'layers.1.weight' is [8, 16] but the recipe's network needs [12, 16]"), Error);
    auto named = net->named_parameters("layers.");
    named.pop_back();
    io::save_safetensors(dir / "short.safetensors", named);
    CHECK_THROWS_WITH_AS(load_checkpoint(*net, dir / "short.safetensors"), doctest::Contains("no tensor 'layers.3.bias'"), Error);
    io::save_safetensors(dir / "same.safetensors", other->named_parameters("layers."));
    Generator g3(5);
    auto twin = models::make_mlp({{16, 8, 10}}, g3);
    load_checkpoint(*twin, dir / "same.safetensors");
    CHECK(twin->parameters()[0].to_vector() == other->parameters()[0].to_vector());
  }

  TEST_CASE("the model must fit the data") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 16);
    Recipe bad = parse_recipe(tiny_recipe(dir.path(), 5).to_toml(), "bad.toml", {"model.widths=[784, 10]"});
    CHECK_THROWS_WITH_AS(Runner(bad, {dir / "run", {}, true}).run(), doctest::Contains("model.widths starts with 784 but"), Error);
  }
}

TEST_SUITE("runner") {
  TEST_CASE("a run stopped at step k and resumed logs exactly what an unstopped run logs") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 24);
    Recipe recipe = tiny_recipe(dir.path(), 50);
    REQUIRE(Runner(recipe, {dir / "whole", {}, true}).run() == 0);
    for (std::int64_t k : {7, 10, 33}) {  // a probe step, a dense metric step, between metric steps
      CAPTURE(k);
      const auto part = dir / ("part" + std::to_string(k));
      RunOptions stop{part, {}, true, k};
      CHECK(Runner(recipe, stop).run() == 130);
      const auto stopped = nlohmann::json::parse(std::ifstream(part / "run.json"));
      CHECK(stopped["status"] == "interrupted");
      CHECK(std::filesystem::exists(part / "ckpt" / ("step_" + std::to_string(k) + ".safetensors")));
      REQUIRE(Runner::resume(part, {{}, {}, true}).run() == 0);
      // The time split goes on from where the stopped run left it.
      const auto finished = nlohmann::json::parse(std::ifstream(part / "run.json"));
      for (const char* key : {"total", "training", "evaluation", "checkpoints"})
        CHECK(finished["seconds"][key].get<double>() >= stopped["seconds"][key].get<double>());
      CHECK(finished["seconds"]["total"].get<double>() > stopped["seconds"]["total"].get<double>());
      auto whole = read_csv(dir / "whole" / "metrics.csv"), resumed = read_csv(part / "metrics.csv");
      REQUIRE(whole.size() == resumed.size());
      for (std::size_t i = 0; i < whole.size(); ++i)
        for (std::size_t j = 0; j + 1 < whole[i].size(); ++j) CHECK(whole[i][j] == resumed[i][j]);  // all but seconds
      auto a = io::load_safetensors(dir / "whole" / "ckpt" / "step_50.safetensors");
      auto b = io::load_safetensors(part / "ckpt" / "step_50.safetensors");
      for (std::size_t i = 0; i < a.tensors.size(); ++i) CHECK(a.tensors[i].second.to_vector() == b.tensors[i].second.to_vector());
      CHECK_THROWS_WITH_AS(Runner::resume(part, {{}, {}, true}).run(), doctest::Contains("nothing to resume"), Error);
    }
    CHECK_THROWS_WITH_AS(Runner::resume(dir / "nowhere", {{}, {}, true}), doctest::Contains("no ckpt/resume.safetensors"), Error);
  }

  // What a stopped run left can be damaged by hand, by a sync tool or by a crash of something else:
  // resuming it names the file, the line or key, and what to do, instead of a library's bare
  // "stoll" or parse error (or, before, an abort).
  TEST_CASE("resuming a damaged run directory names the damaged file and field") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 24);
    Recipe recipe = tiny_recipe(dir.path(), 50);
    const auto stopped = dir / "stopped";
    REQUIRE(Runner(recipe, {stopped, {}, true, 12}).run() == 130);
    auto damaged = [&](const std::string& name, const std::function<void(const std::filesystem::path&)>& damage) {
      const auto copy = dir / name;
      std::filesystem::copy(stopped, copy, std::filesystem::copy_options::recursive);
      damage(copy);
      return copy;
    };
    const auto bad_json = damaged("json", [](const auto& d) { std::ofstream(d / "run.json") << "{\"status\": "; });
    CHECK_THROWS_WITH_AS(Runner::resume(bad_json, {{}, {}, true}).run(),
                         doctest::Contains("json/run.json: [json.exception.parse_error"), Error);
    const auto bad_row = damaged("row", [](const auto& d) {
      auto rows = read_csv(d / "metrics.csv");
      std::ofstream out(d / "metrics.csv");
      for (std::size_t i = 0; i < rows.size(); ++i) {
        for (std::size_t j = 0; j < rows[i].size(); ++j) out << (j ? "," : "") << (i == 3 && j == 0 ? "3x" : rows[i][j]);
        out << "\n";
      }
    });
    CHECK_THROWS_WITH_AS(Runner::resume(bad_row, {{}, {}, true}).run(),
                         doctest::Contains("row/metrics.csv:4: '3x' is not a number; the run directory is damaged"), Error);
    // A metadata value of the same length, so that the file stays valid safetensors.
    const auto bad_meta = damaged("meta", [](const auto& d) {
      const auto file = d / "ckpt" / "resume.safetensors";
      auto bytes = io::read_file(file);
      const std::string key = "\"position\":\"";
      const auto at = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
      REQUIRE(at != bytes.end());
      *(at + static_cast<std::ptrdiff_t>(key.size())) = 'x';
      io::write_file_atomically(file, bytes.data(), bytes.size());
    });
    CHECK_THROWS_WITH_AS(Runner::resume(bad_meta, {{}, {}, true}).run(),
                         doctest::Contains("resume.safetensors, metadata 'position': 'x"), Error);
    // The undamaged original still resumes.
    CHECK(Runner::resume(stopped, {{}, {}, true}).run() == 0);
  }

  TEST_CASE("a run directory that cannot be made is refused with the path and the fix") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 24);
    std::ofstream(dir / "a_file") << "not a directory";
    CHECK_THROWS_WITH_AS(Runner(tiny_recipe(dir.path(), 5), {dir / "a_file" / "run", {}, true}).run(),
                         doctest::Contains("a_file/run/ckpt: cannot create this directory (Not a directory); choose another --out"),
                         Error);
  }

  // A device fault, a full disk or any other error in the loop: the run says where it failed and
  // what it kept, and resumes from its last probe step to what an unfailed run logs.
  TEST_CASE("a run that fails at step k marks itself failed, keeps its logs and resumes") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 24);
    Recipe recipe = tiny_recipe(dir.path(), 50);
    REQUIRE(Runner(recipe, {dir / "whole", {}, true}).run() == 0);
    const auto probe_steps = log_spaced_steps(50, 5);
    const std::int64_t k = probe_steps[3], before = probe_steps[2];
    for (bool std_error : {false, true}) {
      CAPTURE(std_error);
      const auto part = dir / (std_error ? "part_std" : "part");
      Runner failing(recipe, {part, {}, true});
      failing.add_probe("fault", [&](const ProbeContext& c) {
        if (c.step != k) return;
        if (std_error) throw std::runtime_error("out of device memory (injected)");
        throw Error("an illegal memory access (injected)");
      });
      std::string message;
      try {
        failing.run();
      } catch (const Error& e) {
        message = e.what();
      }
      CHECK(message.find("step " + std::to_string(k) + ": ") == 0);
      CHECK(message.find("(injected)") != std::string::npos);
      CHECK(message.find("grokscope train --resume " + part.string()) != std::string::npos);
      CHECK(message.find("step_" + std::to_string(k) + ".safetensors") != std::string::npos);  // its last checkpoint
      auto info = nlohmann::json::parse(std::ifstream(part / "run.json"));
      CHECK(info["status"] == "failed");
      CHECK(info["last_step"] == k);
      REQUIRE(info["failures"].size() == 1);
      CHECK(info["failures"][0]["step"] == k);
      CHECK(info["failures"][0]["error"].get<std::string>().find("(injected)") != std::string::npos);
      auto logged = read_csv(part / "metrics.csv");
      CHECK(std::stoll(logged.back()[0]) == k);  // every row up to the failing step
      // The resume state is the probe step's before it: the run goes on from there.
      REQUIRE(Runner::resume(part, {{}, {}, true}).run() == 0);
      // The time split goes on from where the failed run left it.
      const auto finished = nlohmann::json::parse(std::ifstream(part / "run.json"));
      for (const char* key : {"total", "training", "evaluation", "checkpoints"})
        CHECK(finished["seconds"][key].get<double>() >= info["seconds"][key].get<double>());
      CHECK(finished["seconds"]["total"].get<double>() > info["seconds"]["total"].get<double>());
      auto whole = read_csv(dir / "whole" / "metrics.csv"), resumed = read_csv(part / "metrics.csv");
      REQUIRE(whole.size() == resumed.size());
      for (std::size_t i = 0; i < whole.size(); ++i)
        for (std::size_t j = 0; j + 1 < whole[i].size(); ++j) CHECK(whole[i][j] == resumed[i][j]);  // all but seconds
      info = nlohmann::json::parse(std::ifstream(part / "run.json"));
      CHECK(info["status"] == "finished");
      CHECK(info["resumed_at"].back() == before);
      CHECK(info["failures"].size() == 1);  // the run's history
    }
  }
}

TEST_SUITE("runner") {
  // The NTK's distances start from the initial weights' kernel: a schedule that leaves step 0 out
  // used to fail at its first probe step for want of ckpt/step_0.safetensors.
  TEST_CASE("explicit probe steps without step 0 probe the initial weights as well") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 24);
    Recipe recipe = tiny_recipe(dir.path(), 12);
    recipe.schedule.probe_steps = {5, 12};
    Runner runner(recipe, {dir / "run", {}, true});
    auto probe = std::make_shared<NtkProbe>();
    runner.add_probe("ntk", [probe](const ProbeContext& c) { (*probe)(c); });
    REQUIRE(runner.run() == 0);
    CHECK(nlohmann::json::parse(std::ifstream(dir / "run" / "run.json"))["status"] == "finished");
    std::set<std::int64_t> steps;
    for (const auto& row : read_csv(dir / "run" / "ntk.csv"))
      if (row[0] != "step") steps.insert(std::stoll(row[0]));
    CHECK(steps == std::set<std::int64_t>{0, 5, 12});
  }

  TEST_CASE("the NTK probe writes ntk.csv, and a resumed run writes the same rows") {
    test::TempDir dir;
    write_tiny_mnist(dir.path(), 64, 24);
    Recipe recipe = tiny_recipe(dir.path(), 40);
    auto with_ntk = [](Runner& r) {
      auto probe = std::make_shared<NtkProbe>();
      r.add_probe("ntk", [probe](const ProbeContext& c) { (*probe)(c); });
    };
    Runner whole(recipe, {dir / "whole", {}, true});
    auto saving = std::make_shared<NtkProbe>(/*save_kernels=*/true);
    whole.add_probe("ntk", [saving](const ProbeContext& c) { (*saving)(c); });
    REQUIRE(whole.run() == 0);
    auto rows = read_csv(dir / "whole" / "ntk.csv");
    const auto probe_steps = log_spaced_steps(40, 5);
    REQUIRE(rows.size() == 1 + 2 * probe_steps.size());
    CHECK(rows[0][2] == "distance_to_init");
    CHECK(rows[0].back() == "share_layers.3");
    CHECK(rows[1][0] == "0");
    CHECK(rows[1][1] == "train");
    CHECK(rows[2][1] == "test");
    CHECK(std::stod(rows[1][2]) == 0.0);
    CHECK(rows[1][3] == "nan");  // no previous kernel at step 0
    const auto& last = rows.back();
    CHECK(std::stod(last[2]) > 0.0);
    CHECK(std::stod(last[2]) < 1.0);
    CHECK(std::stod(last[8]) + std::stod(last[9]) == doctest::Approx(1.0).epsilon(1e-5));  // the shares
    Tensor saved0 = io::load_npy(dir / "whole" / "ntk_kernels" / "step_0_test.npy");
    CHECK(saved0.shape() == Shape{80, 80});  // 8 points × 10 logits

    // The pairwise matrix: symmetric, zero diagonal, and its first row is the distance to init.
    auto steps = io::load_npy(dir / "whole" / "ntk_pairwise_steps.npy").to_int_vector();
    CHECK(std::vector<std::int64_t>(steps.begin(), steps.end()) == probe_steps);
    Tensor pairwise = io::load_npy(dir / "whole" / "ntk_pairwise_train.npy");
    const auto s_count = static_cast<std::int64_t>(steps.size());
    REQUIRE(pairwise.shape() == Shape{s_count, s_count});
    auto pv = pairwise.to_vector();
    for (std::int64_t i = 0; i < s_count; ++i) {
      CHECK(pv[static_cast<std::size_t>(i * s_count + i)] == 0.0);
      for (std::int64_t j = 0; j < s_count; ++j)
        CHECK(pv[static_cast<std::size_t>(i * s_count + j)] == pv[static_cast<std::size_t>(j * s_count + i)]);
      CHECK(pv[static_cast<std::size_t>(i)] == doctest::Approx(std::stod(rows[1 + 2 * i][2])).epsilon(1e-6));
    }

    // Streamed, from the factors, the probe writes the same numbers (to rounding: 1 − cos there,
    // ½‖·‖² when held). With 10 logits over one hidden width of 12, its sums come from per-sample
    // products (engine/probe/ntk_products.h), each reference's ‖K‖² kept from the step that made it.
    Runner streamed(recipe, {dir / "streamed", {}, true});
    auto streamed_probe = std::make_shared<NtkProbe>(/*save_kernels=*/false, /*force_streamed=*/true);
    streamed.add_probe("ntk", [streamed_probe](const ProbeContext& c) { (*streamed_probe)(c); });
    REQUIRE(streamed.run() == 0);
    auto srows = read_csv(dir / "streamed" / "ntk.csv");
    REQUIRE(srows.size() == rows.size());
    for (std::size_t i = 1; i < rows.size(); ++i)
      for (std::size_t j = 2; j < rows[i].size(); ++j) {
        CAPTURE(i);
        CAPTURE(j);
        if (rows[i][j] == "nan") {
          CHECK(srows[i][j] == "nan");
          continue;
        }
        CHECK(std::stod(srows[i][j]) == doctest::Approx(std::stod(rows[i][j])).epsilon(1e-5).scale(1e-9));
      }
    // Resumed streamed: the step-0 and previous factors are rebuilt from checkpoints, ‖K₀‖² too.
    auto streamed_run = [&](Runner r) {
      auto p = std::make_shared<NtkProbe>(/*save_kernels=*/false, /*force_streamed=*/true);
      r.add_probe("ntk", [p](const ProbeContext& c) { (*p)(c); });
      return r.run();
    };
    CHECK(streamed_run(Runner(recipe, {dir / "streamed_part", {}, true, 12})) == 130);
    REQUIRE(streamed_run(Runner::resume(dir / "streamed_part", {{}, {}, true})) == 0);
    CHECK(read_csv(dir / "streamed_part" / "ntk.csv") == srows);

    RunOptions stop{dir / "part", {}, true, 12};
    Runner part(recipe, stop);
    with_ntk(part);
    CHECK(part.run() == 130);
    Runner rest = Runner::resume(dir / "part", {{}, {}, true});
    with_ntk(rest);
    REQUIRE(rest.run() == 0);
    auto resumed = read_csv(dir / "part" / "ntk.csv");
    REQUIRE(resumed.size() == rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      CAPTURE(i);
      for (std::size_t j = 0; j < rows[i].size(); ++j) CHECK_MESSAGE(resumed[i][j] == rows[i][j], resumed[i][j] << " vs " << rows[i][j]);
    }
  }
}

TEST_SUITE("mnist") {
  TEST_CASE("real MNIST: the default recipe for 300 steps fits most of its 1000 training points") {
    const auto mnist = std::filesystem::path(GROKSCOPE_SOURCE_DIR) / "data" / "cache" / "mnist";
    if (!std::filesystem::exists(mnist / "train-images-idx3-ubyte")) {
      MESSAGE("data/cache/mnist is absent (run data/fetch.sh): skipped");
      return;
    }
    test::TempDir dir;
    Recipe r = parse_recipe("", "default.toml",
                            {"data.path=" + mnist.string(), "train.steps=300", "model.init_scale=1", "schedule.probe_points=2",
                             "schedule.metrics=\"every\"", "schedule.metric_every=100"});
    REQUIRE(Runner(r, {dir / "run", {}, true}).run() == 0);
    auto rows = read_csv(dir / "run" / "metrics.csv");
    CHECK(std::stod(rows.back()[3]) > 0.9);   // train accuracy
    CHECK(std::stod(rows.back()[5]) > 0.75);  // test accuracy at init ×1 generalizes early
  }
}

TEST_SUITE("pytorch") {
  TEST_CASE("PyTorch loads grokscope checkpoints into the equivalent modules with strict load_state_dict") {
    if (std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
      MESSAGE("PyTorch is not installed for /usr/bin/python3 (tools/setup.sh --torch): skipped");
      return;
    }
    test::TempDir dir;
    Generator gen(3);
    struct Case {
      std::shared_ptr<nn::Sequential> net;
      std::string args;
    };
    std::vector<Case> cases{{models::make_mlp({{784, 20, 30, 10}}, gen), "784 20 30 10"},
                            {models::make_cnn({1, 12, 5}, gen), "--cnn 5 1 12"}};
    for (auto& c : cases) {
      CAPTURE(c.args);
      auto params = c.net->named_parameters("layers.");
      io::save_safetensors(dir / "ckpt.safetensors", params, {{"step", "7"}});
      const std::string cmd = "/usr/bin/python3 " + std::string(GROKSCOPE_SOURCE_DIR) + "/tools/read_checkpoint.py " +
                              (dir / "ckpt.safetensors").string() + " " + c.args + " > " + (dir / "out.txt").string() + " 2>&1";
      REQUIRE(std::system(cmd.c_str()) == 0);
      std::ifstream in(dir / "out.txt");
      std::string name, dtype, shape;
      for (const auto& [expected_name, t] : params) {
        double norm = 0;
        in >> name >> dtype;
        std::getline(in, shape, ']');
        in >> norm;
        CHECK(name == expected_name);
        CHECK(dtype == "float32");
        NoGrad no_tape;
        CHECK(norm == doctest::Approx(std::sqrt(ops::sum(ops::mul(t.to(DType::f64), t.to(DType::f64))).item())).epsilon(1e-8));
      }
      std::string tag, meta;
      in >> tag;
      std::getline(in, meta);
      CHECK(tag == "metadata");
      CHECK(meta.find("\"step\": \"7\"") != std::string::npos);
    }
  }
}

namespace {
std::string file_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A tiny run trained into dir/run with its recipe's probes, for grokscope probe to read; returns
// its checkpoint steps.
std::vector<std::int64_t> train_probed_tiny_run(const test::TempDir& dir) {
  write_tiny_mnist(dir.path(), 64, 40);
  const Recipe recipe = tiny_recipe(dir.path(), 40);
  Runner runner(recipe, {dir / "run", {}, true});
  for (auto& [name, hook] : recipe_probes(recipe)) runner.add_probe(name, hook);
  REQUIRE(runner.run() == 0);
  return checkpoint_steps(dir / "run" / "ckpt");
}
}  // namespace

TEST_SUITE("runner") {
  // grokscope probe: the same probes on the checkpoints give the run's own rows to the byte; other
  // probe settings change only what they should; and what cannot be probed is refused, saying why.
  TEST_CASE("probing a run's checkpoints again reproduces its probes, and other settings write their own") {
    test::TempDir dir;
    const auto steps = train_probed_tiny_run(dir);
    CHECK(steps == log_spaced_steps(40, 5));

    ProbeCommand same{dir / "run", dir / "same", {}, Device::cpu, true, {"grokscope", "probe"}};
    REQUIRE(run_probe_command(same) == 0);
    for (const char* file : {"ntk.csv", "geometry.csv", "metrics.csv", "recipe.toml", "ntk_pairwise_train.npy"}) {
      CAPTURE(file);
      CHECK(file_text(dir / "same" / file) == file_text(dir / "run" / file));
    }
    const auto info = nlohmann::json::parse(std::ifstream(dir / "same" / "run.json"));
    CHECK(info["status"] == "finished");
    CHECK(info["probed_steps"].get<std::vector<std::int64_t>>() == steps);
    CHECK(info["probed_from"].get<std::string>() == std::filesystem::absolute(dir / "run").lexically_normal().string());
    CHECK(analyze_run(dir / "same").status == "finished");  // the report reads it as a run

    // Another margin: the geometry moves, the kernel does not.
    ProbeCommand kappa{dir / "run", dir / "kappa", {"probe.kappa=0.5"}, Device::cpu, true, {}};
    REQUIRE(run_probe_command(kappa) == 0);
    CHECK(file_text(dir / "kappa" / "ntk.csv") == file_text(dir / "run" / "ntk.csv"));
    const auto before = read_csv(dir / "run" / "geometry.csv"), after = read_csv(dir / "kappa" / "geometry.csv");
    REQUIRE(before.size() == after.size());
    CHECK(before[0][2] == "capacity");
    CHECK(std::stod(after[1][2]) < std::stod(before[1][2]));  // a margin leaves less room: lower capacity
    CHECK(load_recipe(dir / "kappa" / "recipe.toml").probe.kappa == 0.5);

    ProbeCommand bad = same;
    bad.out = dir / "other";
    bad.overrides = {"train.steps=5"};
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("only probe.* keys can change here"), Error);
    bad.overrides = {};
    bad.out = dir / "run";
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("is the run directory itself"), Error);
    bad.out = dir / "same";
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("already holds results"), Error);
    bad.out = dir / "other";
    bad.overrides = {"probe.ntk=false", "probe.geometry=false"};
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("nothing to probe"), Error);

    // Without the initial weights there is no NTK distance to measure; the geometry alone is fine.
    std::filesystem::remove(dir / "run" / "ckpt" / "step_0.safetensors");
    bad.overrides = {};
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("no ckpt/step_0.safetensors"), Error);
    ProbeCommand geometry_only{dir / "run", dir / "geometry", {"probe.ntk=false"}, Device::cpu, true, {}};
    REQUIRE(run_probe_command(geometry_only) == 0);
    CHECK_FALSE(std::filesystem::exists(dir / "geometry" / "ntk.csv"));
    const auto rows = read_csv(dir / "geometry" / "geometry.csv");
    CHECK(rows.size() == 1 + (before.size() - 1) / steps.size() * (steps.size() - 1));  // every layer at every other step
  }

  // grokscope probe --resume: a probe stopped between two steps, or killed within one, goes on
  // from the last step every CSV logged and ends with what a probe never stopped writes.
  TEST_CASE("a stopped probe resumed writes what an unstopped one writes") {
    test::TempDir dir;
    const auto steps = train_probed_tiny_run(dir);
    REQUIRE(steps.size() >= 5);
    const std::vector<std::string> sets = {"probe.kappa=0.5"};
    REQUIRE(run_probe_command({dir / "run", dir / "full", sets, Device::cpu, true, {}}) == 0);
    const auto same_as_full = [&](const std::filesystem::path& out) {
      for (const char* file : {"ntk.csv", "geometry.csv", "metrics.csv", "recipe.toml", "ntk_pairwise_train.npy",
                               "ntk_pairwise_steps.npy"}) {
        CAPTURE(file);
        CHECK(file_text(out / file) == file_text(dir / "full" / file));
      }
    };

    ProbeCommand stopped{dir / "run", dir / "part", sets, Device::cpu, true, {}};
    stopped.stop_after_steps = 2;
    REQUIRE(run_probe_command(stopped) == 130);
    auto info = nlohmann::json::parse(std::ifstream(dir / "part" / "run.json"));
    CHECK(info["probe_status"] == "stopped");
    CHECK(logged_steps(dir / "part" / "geometry.csv") == std::vector<std::int64_t>{steps[0], steps[1]});
    ProbeCommand resume{{}, dir / "part", {}, Device::cpu, true, {"grokscope", "probe", "--resume"}, true};
    REQUIRE(run_probe_command(resume) == 0);
    same_as_full(dir / "part");
    info = nlohmann::json::parse(std::ifstream(dir / "part" / "run.json"));
    CHECK(info["probe_status"] == "finished");
    CHECK(info["probe_resumed_at_step"] == steps[1]);  // the last step both CSVs logged, probed again
    CHECK(info["probe_command_lines_resumed"].size() == 1);
    CHECK(info["probed_from"].get<std::string>() == std::filesystem::absolute(dir / "run").lexically_normal().string());
    // Finished: nothing left to do, and nothing rewritten.
    REQUIRE(run_probe_command(resume) == 0);
    same_as_full(dir / "part");

    // Killed within step 3: the kernel's rows of step 3 written, the geometry's in part, and no
    // probe_status at all (the process never got to write one).
    std::filesystem::create_directories(dir / "killed");
    for (const char* file : {"metrics.csv", "recipe.toml"}) std::filesystem::copy_file(dir / "full" / file, dir / "killed" / file);
    auto killed_info = nlohmann::json::parse(std::ifstream(dir / "full" / "run.json"));
    killed_info.erase("probe_status");
    killed_info.erase("probe_seconds");
    std::ofstream(dir / "killed" / "run.json") << killed_info.dump(2);
    const auto rows_until = [&](const char* file, std::int64_t last_step, std::size_t extra_rows) {
      std::ifstream in(dir / "full" / file);
      std::ofstream out(dir / "killed" / file);
      std::string line;
      std::getline(in, line);
      out << line << "\n";
      while (std::getline(in, line)) {
        const std::int64_t step = std::stoll(line.substr(0, line.find(',')));
        if (step <= last_step || (step == steps[3] && extra_rows > 0 && extra_rows--)) out << line << "\n";
      }
    };
    rows_until("ntk.csv", steps[3], 0);
    rows_until("geometry.csv", steps[2], 2);  // two of step 3's layers
    resume.out = dir / "killed";
    REQUIRE(run_probe_command(resume) == 0);
    same_as_full(dir / "killed");
    CHECK(nlohmann::json::parse(std::ifstream(dir / "killed" / "run.json"))["probe_resumed_at_step"] == steps[3]);

    ProbeCommand bad = resume;
    bad.overrides = {"probe.kappa=1"};
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("drop --set"), Error);
    bad.overrides = {};
    bad.out = dir / "run";
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("was not written by grokscope probe"), Error);
    bad.out = dir / "nowhere";
    CHECK_THROWS_WITH_AS(run_probe_command(bad), doctest::Contains("no such directory"), Error);
  }
}

