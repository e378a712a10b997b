// The grokscope binary end to end: train on a tiny dataset, then `grokscope ntk --json` on two
// of its checkpoints must report the distance the run logged; bad input exits 1 with the reason.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/idx.h"
#include "engine/io/npy.h"
#include "engine/probe/geometry.h"
#include "experiments/recipe.h"
#include "experiments/schedule.h"
#include "helpers.h"
#include "temp_dir.h"

#ifndef GROKSCOPE_BINARY
#error "the cli suite needs GROKSCOPE_BINARY"
#endif

using namespace gs;

namespace {

struct Result {
  int status;
  std::string out;
};

// A shell command line, its output (stdout and stderr) and exit status (-1: killed by a signal).
Result run_shell(const std::string& cmd) {
  Result r{0, ""};
  std::FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.out += buf;
  const int raw = pclose(p);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

Result run(const std::string& args) { return run_shell(std::string(GROKSCOPE_BINARY) + " " + args + " 2>&1"); }

// The --set options that point a recipe at write_tiny's data, with a network and probe sets
// small enough for it.
std::string tiny_sets(const std::filesystem::path& data) {
  return " --set data.path=" + data.string() +
         " --set data.train_size=64 --set model.widths=[16,12,10] --set train.batch_size=16"
         " --set probe.train_size=8 --set probe.test_size=8";
}

void write_tiny(const std::filesystem::path& dir) {
  Generator g(4, Stream::test);
  for (auto [prefix, n] : {std::pair<const char*, std::int64_t>{"train", 80}, {"t10k", 40}}) {
    data::IdxArray images{{n, 4, 4}, {}}, labels{{n}, {}};
    for (std::int64_t i = 0; i < n; ++i) {
      labels.values.push_back(static_cast<std::uint8_t>(i % 4));
      for (int q = 0; q < 16; ++q) images.values.push_back(static_cast<std::uint8_t>(g.below(256)));
    }
    data::write_idx(dir / (std::string(prefix) + "-images-idx3-ubyte"), images);
    data::write_idx(dir / (std::string(prefix) + "-labels-idx1-ubyte"), labels);
  }
}

// tools/run_sweep.sh on write_tiny's data in `dir` (the recipe tiny.toml, written here), two runs
// at a time into `out`, without figures; `key_and_values` as the script takes them.
std::string sweep_command(const std::filesystem::path& dir, const std::filesystem::path& out, const std::string& key_and_values,
                          const std::string& more_sets = "") {
  std::ofstream(dir / "tiny.toml") << "[train]\nsteps = 30\nloss = \"ce\"\n";
  return "GROKSCOPE=" + std::string(GROKSCOPE_BINARY) + " " + GROKSCOPE_SOURCE_DIR + "/tools/run_sweep.sh --jobs 2 --no-figures --out " +
         out.string() + tiny_sets(dir) + " --set schedule.probe_points=3 --set probe.geometry_per_class=4" + more_sets + " " +
         (dir / "tiny.toml").string() + " " + key_and_values;
}

// The sweep into dir/sweep, after the shell commands `before` (which may take a lock).
Result run_sweep(const std::filesystem::path& dir, const std::string& key_and_values, const std::string& before = "") {
  return run_shell(before + sweep_command(dir, dir / "sweep", key_and_values) + " 2>&1");
}

std::size_t experiments_probe_steps(std::int64_t total, std::int64_t points) {
  return gs::experiments::log_spaced_steps(total, points).size();
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("train, then ntk --json on two checkpoints reproduces the logged distance") {
    test::TempDir dir;
    write_tiny(dir.path());
    const std::string sets = tiny_sets(dir.path()) + " --set schedule.probe_points=3 --set probe.geometry_per_class=4";
    std::ofstream(dir / "tiny.toml") << "[train]\nsteps = 30\nloss = \"ce\"\n";
    Result train = run("train " + (dir / "tiny.toml").string() + " --out " + (dir / "run").string() + " --quiet" + sets);
    REQUIRE_MESSAGE(train.status == 0, train.out);
    // The run recorded its resolved recipe: the probe sets of `ntk` are drawn from it.
    Result ntk = run("ntk --recipe " + (dir / "run" / "recipe.toml").string() + " --checkpoint " +
                     (dir / "run" / "ckpt" / "step_0.safetensors").string() + " --against " +
                     (dir / "run" / "ckpt" / "step_30.safetensors").string() + " --probe test --json");
    REQUIRE_MESSAGE(ntk.status == 0, ntk.out);
    auto j = nlohmann::json::parse(ntk.out);
    CHECK(j["samples"] == 8);
    CHECK(j["classes"] == 10);
    std::ifstream csv(dir / "run" / "ntk.csv");
    std::string line, logged;
    while (std::getline(csv, line))
      if (line.rfind("30,test,", 0) == 0) logged = line;
    REQUIRE(!logged.empty());
    std::stringstream cells(logged);
    std::string step, set, distance;
    std::getline(cells, step, ',');
    std::getline(cells, set, ',');
    std::getline(cells, distance, ',');
    CHECK(j["distance"].get<double>() == doctest::Approx(std::stod(distance)).epsilon(1e-6));
    CHECK(j["layer_shares"].size() == 2);

    // probe: the run's checkpoints again, with another margin, into a directory of their own.
    Result probe = run("probe " + (dir / "run").string() + " --out " + (dir / "kappa").string() + " --set probe.kappa=0.5 --quiet");
    REQUIRE_MESSAGE(probe.status == 0, probe.out);
    CHECK(probe.out.find("checkpoints of " + (dir / "run").string() + " probed in") != std::string::npos);
    std::ifstream probed_recipe(dir / "kappa" / "recipe.toml");
    CHECK(std::string(std::istreambuf_iterator<char>(probed_recipe), {}).find("kappa = 0.5\n") != std::string::npos);
    CHECK(std::filesystem::exists(dir / "kappa" / "geometry.csv"));
    // --resume on a finished probe has nothing to do; it takes no run and no --out beside it.
    Result again = run("probe --resume " + (dir / "kappa").string());
    REQUIRE_MESSAGE(again.status == 0, again.out);
    CHECK(again.out.find("nothing to resume") != std::string::npos);
    Result both = run("probe " + (dir / "run").string() + " --resume " + (dir / "kappa").string());
    CHECK(both.status != 0);
    CHECK(both.out.find("excludes") != std::string::npos);
    Result no_out = run("probe " + (dir / "run").string());
    CHECK(no_out.status != 0);
    CHECK(no_out.out.find("give a run directory and --out DIR") != std::string::npos);

    // The geometry probe: one row per probe step and layer, named as the model names them.
    std::ifstream geo(dir / "run" / "geometry.csv");
    std::getline(geo, line);
    CHECK(line == "step,layer,capacity,capacity_se,radius,dimension,center_correlation,k");
    std::vector<std::string> layers_at_0;
    std::size_t rows = 0;
    while (std::getline(geo, line)) {
      ++rows;
      std::stringstream cells2(line);
      std::string s0, layer, capacity;
      std::getline(cells2, s0, ',');
      std::getline(cells2, layer, ',');
      std::getline(cells2, capacity, ',');
      CHECK(std::stod(capacity) > 0);
      if (s0 == "0") layers_at_0.push_back(layer);
    }
    CHECK(layers_at_0 == std::vector<std::string>{"input", "layers.1", "layers.2", "layers.3", "output"});
    CHECK(rows == 5 * experiments_probe_steps(30, 3));

    // The report reads what the runner wrote: every file, every layer, a verdict, no notes of
    // missing or unreadable files.
    Result report = run("report " + (dir / "run").string() + " --no-figures --json");
    REQUIRE_MESSAGE(report.status == 0, report.out);
    auto summary = nlohmann::json::parse(std::ifstream(dir / "run" / "summary.json"));
    CHECK(summary["status"] == "finished");
    CHECK(summary["last_step"] == 30);
    CHECK(summary["ntk"].contains("train"));
    CHECK(summary["ntk"].contains("test"));
    CHECK(summary["layers"].size() == 5);
    CHECK(summary["layers"][4]["layer"] == "output");
    CHECK(summary["notes"].empty());
    CHECK(!summary["verdict"].get<std::string>().empty());
    CHECK(nlohmann::json::parse(report.out)[0]["verdict"] == summary["verdict"]);

    // probe.geometry_center_structure = false analyses the manifolds as they are: K is 0 on every
    // row, where the run above removed a structure from some layer.
    Result plain = run("train " + (dir / "tiny.toml").string() + " --out " + (dir / "plain").string() + " --quiet" + sets +
                       " --set probe.ntk=false --set probe.geometry_center_structure=false");
    REQUIRE_MESSAGE(plain.status == 0, plain.out);
    auto k_column = [](const std::filesystem::path& csv_path) {
      std::ifstream csv_file(csv_path);
      std::string row;
      std::vector<std::string> ks;
      std::getline(csv_file, row);
      while (std::getline(csv_file, row)) ks.push_back(row.substr(row.rfind(',') + 1));
      return ks;
    };
    const auto plain_k = k_column(dir / "plain" / "geometry.csv"), removed_k = k_column(dir / "run" / "geometry.csv");
    CHECK(plain_k.size() == removed_k.size());
    CHECK(std::all_of(plain_k.begin(), plain_k.end(), [](const std::string& k) { return k == "0"; }));
    CHECK(std::any_of(removed_k.begin(), removed_k.end(), [](const std::string& k) { return k != "0"; }));
    // probe.geometry_center_k = 1 removes one direction from every layer at every step.
    Result fixed = run("train " + (dir / "tiny.toml").string() + " --out " + (dir / "fixed").string() + " --quiet" + sets +
                       " --set probe.ntk=false --set probe.geometry_center_k=1");
    REQUIRE_MESSAGE(fixed.status == 0, fixed.out);
    const auto fixed_k = k_column(dir / "fixed" / "geometry.csv");
    CHECK(fixed_k.size() == removed_k.size());
    CHECK(std::all_of(fixed_k.begin(), fixed_k.end(), [](const std::string& k) { return k == "1"; }));
    std::ifstream fixed_recipe(dir / "fixed" / "recipe.toml");
    CHECK(std::string(std::istreambuf_iterator<char>(fixed_recipe), {}).find("geometry_center_k = 1\n") != std::string::npos);
  }

  TEST_CASE("SIGINT stops a run after its step with a checkpoint and status 130, and --resume finishes it") {
    test::TempDir dir;
    write_tiny(dir.path());
    const std::string sets = tiny_sets(dir.path()) +
                             " --set train.steps=2000000 --set schedule.metrics=every --set schedule.metric_every=1000"
                             " --set probe.ntk=false --set probe.geometry=false";
    const auto run_dir = dir / "run";
    // One shell: start the run, wait for its first probe checkpoint, try to resume it from a
    // second process while it runs (refused: the run holds the directory's lock; were it not,
    // `timeout` would stop it), interrupt the first, print its status.
    const std::string script =
        std::string(GROKSCOPE_BINARY) + " train --quiet --out " + run_dir.string() + sets + " > " +
        (dir / "log.txt").string() + " 2>&1 & pid=$!; for i in $(seq 400); do [ -e " +
        (run_dir / "ckpt" / "step_1.safetensors").string() + " ] && [ -e " + (run_dir / "ckpt" / "resume.safetensors").string() +
        " ] && break; sleep 0.05; done; timeout 20 " + GROKSCOPE_BINARY + " train --quiet --resume " + run_dir.string() + " > " +
        (dir / "second.txt").string() + " 2>&1; echo $? > " + (dir / "second_status.txt").string() +
        "; kill -INT $pid; wait $pid; echo $?";
    std::FILE* p = popen(("sh -c '" + script + "'").c_str(), "r");
    REQUIRE(p != nullptr);
    int status = -1;
    REQUIRE(std::fscanf(p, "%d", &status) == 1);
    pclose(p);
    CHECK(status == 130);
    {
      std::ifstream second_status(dir / "second_status.txt"), second(dir / "second.txt");
      int refused = -1;
      second_status >> refused;
      const std::string said((std::istreambuf_iterator<char>(second)), {});
      INFO(said);
      CHECK(refused == 1);
      CHECK(said.find((run_dir / "run.lock").string() + ": another process (pid ") != std::string::npos);
      CHECK(said.find("wait for it to finish or stop it (Ctrl-C), or choose another --out") != std::string::npos);
    }
    auto info = nlohmann::json::parse(std::ifstream(run_dir / "run.json"));
    CHECK(info["status"] == "interrupted");
    const std::int64_t stopped = info["last_step"];
    CHECK(stopped > 0);
    CHECK(std::filesystem::exists(run_dir / "ckpt" / ("step_" + std::to_string(stopped) + ".safetensors")));
    std::ifstream log(dir / "log.txt");
    std::string text((std::istreambuf_iterator<char>(log)), {});
    CHECK(text.find("stopped after step " + std::to_string(stopped)) != std::string::npos);
    // The stopped run continues where it stopped (2,000,000 steps would take long: just start it,
    // and stop it again the same way, to see the resume pick up the later step).
    const std::string again = std::string(GROKSCOPE_BINARY) + " train --quiet --resume " + run_dir.string() + " > " +
                              (dir / "log2.txt").string() + " 2>&1 & pid=$!; sleep 0.5; kill -INT $pid; wait $pid; echo $?";
    p = popen(("sh -c '" + again + "'").c_str(), "r");
    REQUIRE(p != nullptr);
    REQUIRE(std::fscanf(p, "%d", &status) == 1);
    pclose(p);
    CHECK(status == 130);
    auto info2 = nlohmann::json::parse(std::ifstream(run_dir / "run.json"));
    CHECK(info2["last_step"].get<std::int64_t>() > stopped);
    CHECK(info2["resumed_at"][0] == stopped);
  }

  TEST_CASE("geometry --json on .npy activations equals the library's analysis") {
    test::TempDir dir;
    Generator g(8, Stream::test);
    Tensor x = Tensor::empty(Shape{60, 9}, DType::f64);
    g.normal(x, 0, 1);
    std::vector<std::int32_t> y;
    for (int i = 0; i < 60; ++i) y.push_back(i % 3);
    double* p = x.data<double>();
    for (int i = 0; i < 60; ++i) p[i * 9 + y[static_cast<std::size_t>(i)]] += 3;  // classes apart
    io::save_npy(dir / "x.npy", x.to(DType::f32));
    io::save_npy(dir / "y.npy", Tensor::from(y, Shape{60}));
    Result r = run("geometry --activations " + (dir / "x.npy").string() + " --labels " + (dir / "y.npy").string() +
                   " --n-t 100 --seed 3 --json");
    REQUIRE_MESSAGE(r.status == 0, r.out);
    auto j = nlohmann::json::parse(r.out);
    auto want = probe::analyze_layer(x.to(DType::f32).to_vector(), 9, y, 3, 0.0, 100, 3);
    CHECK(j["capacity"].get<double>() == doctest::Approx(want.capacity).epsilon(1e-12));
    CHECK(j["K"] == want.k);
    CHECK(j["per_class"].size() == 3);
    Result kept = run("geometry --activations " + (dir / "x.npy").string() + " --labels " + (dir / "y.npy").string() +
                      " --n-t 100 --seed 3 --json --no-center-structure");
    REQUIRE_MESSAGE(kept.status == 0, kept.out);
    auto jk = nlohmann::json::parse(kept.out);
    auto want_kept = probe::analyze_layer(x.to(DType::f32).to_vector(), 9, y, 3, 0.0, 100, 3, probe::CenterRemoval::none());
    CHECK(jk["K"] == 0);
    CHECK(jk["capacity"].get<double>() == doctest::Approx(want_kept.capacity).epsilon(1e-12));
    // 3 centers have one direction to remove: --center-k 1 removes it, --center-k 2 removes it too and says so.
    for (int k : {1, 2}) {
      CAPTURE(k);
      Result one = run("geometry --activations " + (dir / "x.npy").string() + " --labels " + (dir / "y.npy").string() +
                       " --n-t 100 --seed 3 --json --center-k " + std::to_string(k));
      REQUIRE_MESSAGE(one.status == 0, one.out);
      auto want_one = probe::analyze_layer(x.to(DType::f32).to_vector(), 9, y, 3, 0.0, 100, 3, probe::CenterRemoval::fixed(k));
      CHECK(want_one.k == 1);
      const bool warned = one.out.find("K is 1, not the 2 asked") != std::string::npos;
      CHECK(warned == (k == 2));
      auto jo = nlohmann::json::parse(one.out.substr(one.out.find('{')));
      CHECK(jo["K"] == 1);
      CHECK(jo["capacity"].get<double>() == doctest::Approx(want_one.capacity).epsilon(1e-12));
    }
    Result both = run("geometry --activations " + (dir / "x.npy").string() + " --labels " + (dir / "y.npy").string() +
                      " --center-k 1 --no-center-structure");
    CHECK(both.status != 0);
    CHECK(both.out.find("excludes") != std::string::npos);
    Result bad = run("geometry --activations " + (dir / "x.npy").string() + " --labels " + (dir / "x.npy").string());
    CHECK(bad.status == 1);
    CHECK(bad.out.find("labels must be a 1-D int32 array") != std::string::npos);
  }

  // A full disk, made with a file-size limit (the signal it sends ignored, so that writes past the
  // limit fail as they would on a full disk): the run stops as failed, naming the log, instead of
  // finishing with rows missing from it.
  TEST_CASE("a log that cannot be written stops the run as failed, naming the file") {
    test::TempDir dir;
    write_tiny(dir.path());
    const std::string sets = tiny_sets(dir.path()) +
                             " --set schedule.probe_points=3 --set probe.geometry_per_class=4 --set schedule.metrics=every"
                             " --set schedule.metric_every=1 --set train.steps=400";
    // 400 rows of metrics are about 32 kB; the checkpoints are under 8 kB. `ulimit -f 24` is
    // 12 kB in dash's blocks and 24 kB in bash's, between the two either way.
    const Result full = run_shell("sh -c 'trap \"\" XFSZ; ulimit -f 24; exec " + std::string(GROKSCOPE_BINARY) +
                                  " train --out " + (dir / "run").string() + " --quiet" + sets + "' 2>&1");
    CHECK(full.status == 1);
    CHECK(full.out.find("run/metrics.csv: writing its rows failed (disk full?)") != std::string::npos);
    CHECK(nlohmann::json::parse(std::ifstream(dir / "run" / "run.json"))["status"] == "failed");
  }

  TEST_CASE("info names the revision, the CPU's BLAS and threads, and whether CUDA can be used") {
    Result info = run("info");
    CHECK(info.status == 0);
    CHECK(info.out.find("cpu: OpenBLAS") != std::string::npos);
    CHECK(info.out.find("OpenMP threads: ") != std::string::npos);
    CHECK(info.out.find("cuda: ") != std::string::npos);
  }

  TEST_CASE("bad input exits 1 and says what is wrong") {
    test::TempDir dir;
    std::ofstream(dir / "bad.toml") << "[train]\nstpes = 5\n";
    Result bad = run("train " + (dir / "bad.toml").string() + " --out " + (dir / "run").string());
    CHECK(bad.status == 1);
    CHECK(bad.out.find("bad.toml:2:9: unknown key 'stpes' in [train]") != std::string::npos);
    Result missing = run("ntk --checkpoint " + (dir / "nothing.safetensors").string());
    CHECK(missing.status == 1);
    CHECK(missing.out.find("nothing.safetensors: no such checkpoint") != std::string::npos);
    Result probe = run("probe " + (dir / "nowhere").string() + " --out " + (dir / "probed").string());
    CHECK(probe.status == 1);
    CHECK(probe.out.find("probe: " + (dir / "nowhere").string() + ": no such run directory") != std::string::npos);
    Result resume = run("train --resume " + (dir / "run").string() + " --set train.steps=5");
    CHECK(resume.status == 1);
    CHECK(resume.out.find("--resume continues the recipe") != std::string::npos);
    // A directory where a file belongs, and a file where a directory belongs: said, not an abort.
    Result directory = run("geometry --activations " + dir.path().string() + " --labels " + dir.path().string());
    CHECK(directory.status == 1);
    CHECK(directory.out.find(dir.path().string() + ": is a directory; give the path of a file in it") != std::string::npos);
    Result kappa = run("geometry --activations " + (dir / "x.npy").string() + " --labels " + (dir / "y.npy").string() + " --kappa nan");
    CHECK(kappa.status != 0);
    CHECK(kappa.out.find("--kappa: must be in [0, 1000000], got nan") != std::string::npos);
    Result tf32 = run("train --tf32 --out " + (dir / "tf32").string());  // on the CPU, the default
    CHECK(tf32.status == 1);
    CHECK(tf32.out.find("--tf32 multiplies on a GPU's tensor cores; give it with --device cuda") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "tf32"));  // refused before anything is written
    std::ofstream(dir / "good.toml") << "[train]\nsteps = 5\n";
    Result out_under_file = run("train " + (dir / "good.toml").string() + " --out " + (dir / "good.toml" / "run").string());
    CHECK(out_under_file.status == 1);
    CHECK(out_under_file.out.find("good.toml/run/ckpt: cannot create this directory (Not a directory); choose another --out") !=
          std::string::npos);
  }

  // tools/run_sweep.sh: a run per value, two at a time, each with the value in its recipe, then
  // one report and its table; run again, it keeps what finished.
  TEST_CASE("tools/run_sweep.sh trains a run per value and reports them together") {
    test::TempDir dir;
    write_tiny(dir.path());
    Result r = run_sweep(dir.path(), "optimizer.weight_decay 0 0.1");
    INFO(r.out);
    REQUIRE(r.status == 0);
    for (double value : {0.0, 0.1}) {
      CAPTURE(value);
      const auto run_dir = dir / "sweep" / (value == 0 ? "weight_decay=0" : "weight_decay=0.1");
      std::ifstream run_json(run_dir / "run.json");
      CHECK(nlohmann::json::parse(run_json)["status"] == "finished");
      CHECK(experiments::load_recipe(run_dir / "recipe.toml").optimizer.weight_decay == value);
      CHECK(std::filesystem::exists(run_dir / "summary.json"));
    }
    CHECK(r.out.find(": done; 2 of 2 runs ended") != std::string::npos);
    CHECK(r.out.find("weight_decay=0 ") != std::string::npos);  // the report's table names both runs
    CHECK(r.out.find("weight_decay=0.1 ") != std::string::npos);
    {  // and its CSV has the swept key as a column (the two runs differ in nothing else)
      std::ifstream csv(dir / "sweep" / "onsets.csv");
      std::string header, first, second;
      std::getline(csv, header), std::getline(csv, first), std::getline(csv, second);
      CHECK(header.rfind("run,condition,optimizer.weight_decay,status,", 0) == 0);
      CHECK(first.rfind((dir / "sweep" / "weight_decay=0").string() + ",weight_decay=0,0,finished,", 0) == 0);
      // 0.1 as written, not as TOML writes the double nearest to it (0.10000000000000001)
      CHECK(second.rfind((dir / "sweep" / "weight_decay=0.1").string() + ",weight_decay=0.1,0.1,finished,", 0) == 0);
    }
    {  // an --out that cannot be a folder is said, with the fix, once the runs are reported
      std::ofstream(dir / "a_file") << "x";
      Result report = run("report " + (dir / "sweep" / "weight_decay=0").string() + " " +
                          (dir / "sweep" / "weight_decay=0.1").string() + " --no-figures --out " + (dir / "a_file" / "out").string());
      CHECK(report.status == 1);
      CHECK(report.out.find("weight_decay=0.1: ") != std::string::npos);  // the verdicts came first
      CHECK(report.out.find("a_file/out: cannot create this directory (Not a directory); choose another --out") !=
            std::string::npos);
    }
    Result again = run_sweep(dir.path(), "optimizer.weight_decay 0 0.1");
    CHECK(again.status == 0);
    std::size_t kept = 0;
    for (std::size_t at = again.out.find("finished earlier; kept"); at != std::string::npos;
         at = again.out.find("finished earlier; kept", at + 1))
      ++kept;
    CHECK(kept == 2);
  }

  // What would put two processes into one run directory is refused: a second sweep into the same
  // folder, a directory some grokscope trains into, a value given twice. Stopped, the sweep stops
  // its runs and starts no more. A key the recipe lacks fails every run.
  TEST_CASE("tools/run_sweep.sh refuses to share a run directory, and stops its runs when stopped") {
    test::TempDir dir;
    write_tiny(dir.path());
    // Another sweep into the same folder (here: this shell holding its lock).
    std::filesystem::create_directories(dir / "sweep");
    Result locked = run_sweep(dir.path(), "optimizer.weight_decay 0 0.5",
                              "exec 9>" + (dir / "sweep" / ".sweep.lock").string() + " && flock 9 && ");
    CHECK(locked.status == 2);
    CHECK(locked.out.find("another sweep is training into") != std::string::npos);
    // A run directory another grokscope is training into (its run.lock held) is left alone.
    std::filesystem::create_directories(dir / "sweep" / "weight_decay=0");
    std::ofstream(dir / "sweep" / "weight_decay=0" / "theirs.txt") << "not the sweep's\n";
    Result busy = run_sweep(dir.path(), "optimizer.weight_decay 0 0.5",
                            "exec 8>" + (dir / "sweep" / "weight_decay=0" / "run.lock").string() + " && flock 8 && ");
    CHECK(busy.status == 1);
    CHECK(busy.out.find("weight_decay=0: another process is training into it; left alone") != std::string::npos);
    CHECK(std::filesystem::exists(dir / "sweep" / "weight_decay=0" / "theirs.txt"));
    CHECK(std::filesystem::exists(dir / "sweep" / "weight_decay=0.5" / "summary.json"));  // the other value trained
    // A value given twice.
    CHECK(run_sweep(dir.path(), "model.init_scale 1 2 1").out == "run_sweep: 1 is given twice\n");
    // SIGTERM to the sweep once two runs have checkpointed: both stop as interrupted, the third
    // never starts, and the sweep exits 130.
    const auto stop = dir / "stop";
    const std::string stopped_sweep =
        sweep_command(dir.path(), stop, "optimizer.weight_decay 0 0.5 1",
                      " --set train.steps=2000000 --set probe.ntk=false --set probe.geometry=false") +
        " > " + (dir / "stop.txt").string() + " 2>&1 & pid=$!; for i in $(seq 400); do [ -e " +
        (stop / "weight_decay=0" / "ckpt" / "resume.safetensors").string() + " ] && [ -e " +
        (stop / "weight_decay=0.5" / "ckpt" / "resume.safetensors").string() +
        " ] && break; sleep 0.05; done; kill -TERM $pid; wait $pid; echo $?";
    Result term = run_shell("sh -c '" + stopped_sweep + "'");
    CHECK(term.out == "130\n");
    for (const char* value : {"0", "0.5"}) {
      std::ifstream run_json(stop / (std::string("weight_decay=") + value) / "run.json");
      CHECK(nlohmann::json::parse(run_json)["status"] == "interrupted");
    }
    CHECK_FALSE(std::filesystem::exists(stop / "weight_decay=1"));
    // A key the recipe does not have: every run fails, and there is nothing to report.
    std::filesystem::remove_all(dir / "sweep");
    Result unknown = run_sweep(dir.path(), "optimizer.wieght_decay 0 0.5");
    CHECK(unknown.status != 0);
    CHECK(unknown.out.find("unknown key 'wieght_decay'") != std::string::npos);
    CHECK(unknown.out.find("no run logged anything") != std::string::npos);
  }
}
