// The report on synthetic run directories whose onsets are known in closed form: step functions
// (the crossing sits at a known fraction of the log-step interval), sigmoids in log-step (the
// crossing of level q sits at 10^(centre + width·logit q)), noisy curves, curves that never rise,
// a single logged point; then bad input, and the figures when matplotlib is present.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/io/npy.h"
#include "experiments/onsets_table.h"
#include "experiments/report.h"
#include "experiments/report_command.h"
#include "experiments/run_set.h"
#include "report_fixtures.h"
#include "temp_dir.h"

using namespace gs;
using namespace gs::experiments;
using namespace gs::test;
namespace fs = std::filesystem;

namespace {

// The two logged steps around the first step where `curve` jumps.
std::pair<double, double> bracket(const std::vector<double>& steps, double at) {
  for (std::size_t i = 1; i < steps.size(); ++i)
    if (steps[i] >= at) return {steps[i - 1], steps[i]};
  FAIL("no bracket");
  return {0, 0};
}

RunReport write_and_analyze(const SyntheticRun& run, const test::TempDir& dir) {
  run.write(dir.path());
  return analyze_run(dir.path());
}

double decades_off(double measured, double expected) { return std::abs(std::log10(measured / expected)); }

}  // namespace

TEST_SUITE("report") {
  TEST_CASE("onsets of step functions sit at the known log-step fraction of their interval") {
    test::TempDir tmp;
    SyntheticRun run;
    run.test = step_at(0.1, 0.9, 10000);
    const RunReport r = write_and_analyze(run, tmp);
    // Train accuracy jumps 0.1 -> 1 between the bracketing steps; 0.99 is 0.89/0.9 of the way.
    const auto [f0, f1] = bracket(run.steps, 100);
    REQUIRE(r.t_fit);
    CHECK(*r.t_fit == doctest::Approx(f0 * std::pow(f1 / f0, 0.89 / 0.9)).epsilon(1e-9));
    const auto [s0, s1] = bracket(run.steps, 10000);
    REQUIRE(r.test.t10);
    CHECK(r.test.start_value == doctest::Approx(0.1));
    CHECK(r.test.final_value == doctest::Approx(0.9));
    CHECK(*r.test.t10 == doctest::Approx(s0 * std::pow(s1 / s0, 0.1)).epsilon(1e-9));
    CHECK(*r.test.t50 == doctest::Approx(s0 * std::pow(s1 / s0, 0.5)).epsilon(1e-9));
    CHECK(*r.test.t90 == doctest::Approx(s0 * std::pow(s1 / s0, 0.9)).epsilon(1e-9));
    CHECK(r.verdict.find("test accuracy rose") != std::string::npos);
  }

  TEST_CASE("onsets of sigmoids in log-step match their closed form") {
    test::TempDir tmp;
    SyntheticRun run;
    const double a0 = 0.2, a1 = 0.9, centre = 4, width = 0.15;
    run.test = log_sigmoid(a0, a1, centre, width);
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.t_fit);
    const double start = run.test(*r.t_fit), final_value = run.test(1e5);
    for (const auto& [q, t] : {std::pair{0.1, r.test.t10}, std::pair{0.5, r.test.t50}, std::pair{0.9, r.test.t90}}) {
      const double level = (start + q * (final_value - start) - a0) / (a1 - a0);
      const double expected = std::pow(10.0, centre + width * logit(level));
      REQUIRE(t);
      CHECK_MESSAGE(decades_off(*t, expected) < 0.01, "q=", q, " measured ", *t, " expected ", expected);
    }
    CHECK(decades_between(*r.t_fit, *r.test.t50) == doctest::Approx(2).epsilon(0.01));
  }

  TEST_CASE("a noisy rise is still placed within a twentieth of a decade") {
    test::TempDir tmp;
    SyntheticRun run;
    run.noise = 0.004;
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.test.t50);
    CHECK(decades_off(*r.test.t50, 1e4) < 0.05);
    CHECK(decades_off(*r.test.t10, std::pow(10.0, 4 + 0.15 * logit(0.1))) < 0.1);
  }

  TEST_CASE("a test curve that never rises has no onsets and says so") {
    test::TempDir tmp;
    SyntheticRun run;
    run.test = constant(0.3);
    run.noise = 0.002;
    const RunReport r = write_and_analyze(run, tmp);
    CHECK(r.t_fit);
    CHECK_FALSE(r.test.moved);
    CHECK_FALSE(r.test.t50);
    CHECK(r.verdict.find("did not rise") != std::string::npos);
    const auto j = report_json(r);
    CHECK(j["test_accuracy"]["t50"].is_null());
    CHECK(j["delay_decades"].is_null());
  }

  TEST_CASE("a run that never fits its training set") {
    test::TempDir tmp;
    SyntheticRun run;
    run.train = log_sigmoid(0.1, 0.9, 2, 0.2);
    const RunReport r = write_and_analyze(run, tmp);
    CHECK_FALSE(r.t_fit);
    CHECK_FALSE(r.test.t50);
    CHECK(r.best_train_accuracy == doctest::Approx(0.9).epsilon(1e-3));
    CHECK(r.verdict.find("did not fit its training set") != std::string::npos);
  }

  TEST_CASE("a single logged point is reported without onsets") {
    test::TempDir tmp;
    SyntheticRun run;
    run.steps = {0};
    run.train = constant(1.0);
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.t_fit);
    CHECK(*r.t_fit == 0);
    CHECK_FALSE(r.test.moved);
    CHECK(r.verdict.find("did not rise") != std::string::npos);
    bool noted = false;
    for (const auto& n : r.notes) noted |= n.find("one logged step") != std::string::npos;
    CHECK(noted);
  }

  TEST_CASE("a rise right after the fit is 'no delay'") {
    test::TempDir tmp;
    SyntheticRun run;
    run.test = log_sigmoid(0.2, 0.9, std::log10(150.0), 0.05);
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.test.t50);
    CHECK(*r.test.t50 <= 2 * *r.t_fit);
    CHECK(r.verdict.rfind("no delay", 0) == 0);
  }

  TEST_CASE("a run that generalizes while it fits is 'no delay', not 'did not rise'") {
    test::TempDir tmp;
    SyntheticRun run;
    run.test = log_sigmoid(0.1, 0.9, std::log10(40.0), 0.05);
    const RunReport r = write_and_analyze(run, tmp);
    CHECK_FALSE(r.test.moved);  // flat after the fit at step ~100
    REQUIRE(r.test_from_start.t50);
    CHECK(decades_off(*r.test_from_start.t50, 40) < 0.02);
    CHECK_MESSAGE(r.verdict.rfind("no delay: test accuracy rose with the fit", 0) == 0, r.verdict);
  }

  TEST_CASE("a test curve that falls after the fit is no rise: no delay, no lead, no lag") {
    test::TempDir tmp;
    SyntheticRun run;
    // Generalizes with the fit (to 0.8 by step ~60), then overfits down to 0.7 around step 10^4.
    const Curve up = log_sigmoid(0.1, 0.8, std::log10(40.0), 0.05), down = log_sigmoid(0, -0.1, 4, 0.1);
    run.test = [=](double t) { return up(t) + down(t); };
    run.ntk = log_sigmoid(0, 0.4, 3, 0.1);
    run.capacity = log_sigmoid(0.1, 0.5, 4.1, 0.1);
    const RunReport r = write_and_analyze(run, tmp);
    CHECK(r.test.moved);
    CHECK_FALSE(r.test.upwards);
    CHECK_MESSAGE(r.verdict.rfind("no delay: test accuracy rose with the fit", 0) == 0, r.verdict);
    CHECK_MESSAGE(r.verdict.find("then fell (0.800 at the fit, 0.700 at the end)") != std::string::npos, r.verdict);
    REQUIRE(r.ntk);
    CHECK_FALSE(r.ntk->lead_decades);
    CHECK_FALSE(r.layers.back().lag_decades);
    CHECK(report_json(r)["delay_decades"].is_null());
    // A curve that only falls, never having risen, did not rise.
    test::TempDir tmp2;
    SyntheticRun falling;
    falling.test = log_sigmoid(0.5, 0.3, 3, 0.1);
    const RunReport f = write_and_analyze(falling, tmp2);
    CHECK_MESSAGE(f.verdict.find("test accuracy did not rise after it (0.500 -> 0.300)") != std::string::npos, f.verdict);
    // Its table row shows no rise: t_10, t_50 and t_90 are empty even though the fall has them.
    REQUIRE(f.test.t50);
    std::istringstream table(report_table({f}));
    std::string header, row;
    std::getline(table, header);
    std::getline(table, row);
    std::istringstream cells(row);
    std::vector<std::string> cell{std::istream_iterator<std::string>(cells), {}};
    REQUIRE(cell.size() == 10);
    CHECK(cell[1] != "-");  // t_fit
    CHECK(cell[2] == "-");
    CHECK(cell[3] == "-");
    CHECK(cell[4] == "-");
  }

  TEST_CASE("NTK departure and output capacity onset: numbers and the verdict") {
    test::TempDir tmp;
    SyntheticRun run;
    run.ntk = log_sigmoid(0, 0.4, 3, 0.1);
    run.capacity = log_sigmoid(0.1, 0.5, 4.1, 0.1);
    run.probe_steps = log_steps(40);
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.ntk);
    CHECK(r.ntk->probe_set == "train");
    CHECK(r.ntk_sets.size() == 2);
    // The maximum is the last logged value, 0.4·σ(20): half of it is at 10^3 (within 1e-9).
    REQUIRE(r.ntk->t_half_max);
    CHECK(decades_off(*r.ntk->t_half_max, 1e3) < 0.01);
    // Above 0.1 where σ = 0.25: 10^(3 + 0.1·logit 0.25).
    REQUIRE(r.ntk->t_absolute);
    CHECK(decades_off(*r.ntk->t_absolute, std::pow(10.0, 3 + 0.1 * logit(0.25))) < 0.01);
    CHECK(*r.ntk->lead_decades == doctest::Approx(1).epsilon(0.02));
    REQUIRE(r.layers.size() == 2);
    CHECK(r.layers[0].layer == "layers.1");
    CHECK_FALSE(r.layers[0].capacity.moved);  // flat within its standard error
    const LayerOnsets& out = r.layers[1];
    REQUIRE(out.capacity.t50);
    CHECK(decades_off(*out.capacity.t50, std::pow(10.0, 4.1)) < 0.01);
    CHECK(*out.lag_decades == doctest::Approx(0.1).epsilon(0.1));
    CHECK_MESSAGE(r.verdict.find("NTK moved 1.0 decades before the test rise; output-layer capacity rose with it "
                                 "(lag 0.1 decades)") != std::string::npos, r.verdict);
    const auto j = report_json(r);
    CHECK(j["ntk"]["train"]["t_half_max"].get<double>() == doctest::Approx(*r.ntk->t_half_max));
    CHECK(j["layers"][1]["capacity"]["t50"].get<double>() == doctest::Approx(*out.capacity.t50));
  }

  TEST_CASE("radius, dimension and center correlation: onsets, lags, and the output layer's table") {
    test::TempDir tmp;
    SyntheticRun run;
    run.capacity = log_sigmoid(0.1, 0.5, 4.3, 0.1);
    run.radius = log_sigmoid(5, 1, 4.2, 0.1);
    run.dimension = log_sigmoid(9, 3, 4.5, 0.1);
    run.center_correlation = log_sigmoid(0.25, 0.12, 3.8, 0.1);
    run.probe_steps = log_steps(40);
    run.write(tmp.path() / "run");
    const RunReport r = analyze_run(tmp.path() / "run");
    const LayerOnsets* out = output_layer(r);
    REQUIRE(out);
    CHECK(out->k_min == 1);
    CHECK(out->k_max == 1);
    const auto check = [&](const MeasureOnsets& m, double centre, bool upwards) {
      CHECK(m.rise.moved);
      CHECK(m.rise.upwards == upwards);
      CHECK_FALSE(m.left_out_for_k);
      REQUIRE(m.rise.t50);
      CHECK(decades_off(*m.rise.t50, std::pow(10.0, centre)) < 0.01);
      REQUIRE(m.lag_decades);
      CHECK(*m.lag_decades == doctest::Approx(centre - 4).epsilon(0.05));
    };
    check(out->radius, 4.2, false);
    check(out->dimension, 4.5, false);
    check(out->center_correlation, 3.8, false);
    // layers.1's measures are flat: no change, no onset.
    CHECK_FALSE(r.layers[0].radius.rise.moved);
    CHECK_FALSE(r.layers[0].center_correlation.rise.t50);
    const auto j = report_json(r);
    CHECK(j["layers"][1]["radius"]["start"].get<double>() == doctest::Approx(5).epsilon(1e-3));
    CHECK(j["layers"][1]["radius"]["final"].get<double>() == doctest::Approx(1).epsilon(1e-3));
    CHECK(j["layers"][1]["dimension"]["t50"].get<double>() == doctest::Approx(*out->dimension.rise.t50));
    CHECK(j["layers"][1]["center_correlation"]["lag_decades_after_test_t50"].get<double>() ==
          doctest::Approx(*out->center_correlation.lag_decades));
    CHECK(j["layers"][1]["k_after_fit"]["max"] == 1);
    CHECK_FALSE(j["layers"][1]["radius"].contains("onsets_left_out"));
    const std::string table = report_table({r});
    CHECK_MESSAGE(table.find("output layer after the fit") != std::string::npos, table);
    CHECK_MESSAGE(table.find("+0.30 up  +0.20 down  +0.50 down  -0.20 down     1") != std::string::npos, table);
  }

  TEST_CASE("a K that changes after the fit leaves out radius and dimension onsets, and says how to fix K") {
    test::TempDir tmp;
    SyntheticRun run;
    run.capacity = log_sigmoid(0.1, 0.5, 4.3, 0.1);
    run.radius = log_sigmoid(5, 1, 4.2, 0.1);
    run.center_correlation = log_sigmoid(0.25, 0.12, 3.8, 0.1);
    run.probe_steps = log_steps(40);
    run.output_k = [](double t) { return t > 1000 && t < 3000 ? 3 : 2; };
    run.write(tmp.path() / "run");
    RunReport r = analyze_run(tmp.path() / "run");
    const LayerOnsets* out = output_layer(r);
    REQUIRE(out);
    CHECK(out->k_min == 2);
    CHECK(out->k_max == 3);
    CHECK(out->k_most_common == 2);
    CHECK(out->radius.left_out_for_k);
    CHECK_FALSE(out->radius.rise.t50);
    CHECK_FALSE(out->radius.lag_decades);
    CHECK(out->radius.rise.start_value == doctest::Approx(5).epsilon(1e-3));  // the ends stay
    CHECK(out->dimension.left_out_for_k);
    REQUIRE(out->center_correlation.rise.t50);  // measured before the removal: kept
    REQUIRE(out->capacity.t50);
    CHECK_FALSE(r.layers[0].radius.left_out_for_k);  // layers.1's K is 1 throughout
    bool noted = false;
    for (const auto& n : r.notes)
      noted = noted || (n.find("K changes after the fit in output (2-3)") != std::string::npos &&
                        n.find("grokscope probe " + (tmp.path() / "run").string() + " --out DIR --set probe.geometry_center_k=2") !=
                            std::string::npos &&
                        n.find("--set probe.geometry_center_structure=false") != std::string::npos);
    CHECK(noted);
    const auto j = report_json(r);
    CHECK(j["layers"][1]["radius"]["t50"].is_null());
    CHECK(j["layers"][1]["radius"].contains("onsets_left_out"));
    CHECK(j["layers"][1]["k_after_fit"]["min"] == 2);
    const std::string table = report_table({r});
    CHECK_MESSAGE(table.find("K varies    K varies") != std::string::npos, table);
    CHECK_MESSAGE(table.find("  2-3\n") != std::string::npos, table);

    // A K that changes only before the fit leaves every onset in.
    run.output_k = [](double t) { return t < 50 ? 3 : 2; };
    run.write(tmp.path() / "early");
    r = analyze_run(tmp.path() / "early");
    REQUIRE(output_layer(r));
    CHECK(output_layer(r)->k_min == 2);
    CHECK_FALSE(output_layer(r)->k_varies());
    CHECK(output_layer(r)->radius.rise.t50);
    for (const auto& n : r.notes) CHECK(n.find("K changes") == std::string::npos);
  }

  // Events a hundredth of a decade apart are "with" each other; their lead or lag rounds to 0.0,
  // which is printed as such, not as "-0.0".
  TEST_CASE("a lead or lag that rounds to zero reads 0.0, whatever its sign") {
    test::TempDir tmp;
    SyntheticRun run;
    run.ntk = log_sigmoid(0, 0.4, 4.02, 0.1);       // half-way just after the test rise: lead about −0.02
    run.capacity = log_sigmoid(0.1, 0.5, 3.98, 0.15);  // about as early as the test rise: lag about −0.02
    run.probe_steps = log_steps(40);
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.ntk);
    REQUIRE(r.ntk->lead_decades);
    REQUIRE(r.layers.size() == 2);
    REQUIRE(r.layers[1].lag_decades);
    CHECK(*r.ntk->lead_decades < 0);
    CHECK(*r.ntk->lead_decades > -0.05);
    CHECK(*r.layers[1].lag_decades < 0);
    CHECK(*r.layers[1].lag_decades > -0.05);
    CHECK_MESSAGE(r.verdict.find("NTK moved with the test rise (lead 0.0 decades)") != std::string::npos, r.verdict);
    CHECK_MESSAGE(r.verdict.find("output-layer capacity rose with it (lag 0.0 decades)") != std::string::npos, r.verdict);
  }

  // A kernel that leaves its initial state early, holds, and moves further after the rise: its
  // half-of-maximum step follows the rise, and the verdict adds when it first passed 0.1.
  TEST_CASE("an NTK whose largest move comes late: the verdict names its early movement too") {
    test::TempDir tmp;
    SyntheticRun run;  // test rise at 10^4
    const Curve early = log_sigmoid(0, 0.13, 1.2, 0.1), late = log_sigmoid(0, 0.3, 4.6, 0.1);
    run.ntk = [=](double t) { return early(t) + late(t); };
    run.probe_steps = log_steps(40);
    const RunReport r = write_and_analyze(run, tmp);
    REQUIRE(r.ntk);
    REQUIRE(r.ntk->lead_decades);
    CHECK(*r.ntk->lead_decades < -0.25);
    REQUIRE(r.ntk->t_absolute);
    CHECK(decades_off(*r.ntk->t_absolute, std::pow(10.0, 1.2 + 0.1 * logit(0.1 / 0.13))) < 0.05);
    CHECK_MESSAGE(r.verdict.find("decades after the test rise (half of its largest distance; it had covered half of its "
                                 "distance at the rise by step ") != std::string::npos,
                  r.verdict);
    // Half of the distance it has at the rise (0.13 of the early move, nearly all of it) comes
    // with the early move, at 10^(1.2 + 0.1·logit(0.5)) = 10^1.2: 2.8 decades before the rise.
    REQUIRE(r.ntk->t_half_at_rise);
    const double at_rise = early(*r.test.t50) + late(*r.test.t50);
    CHECK(decades_off(*r.ntk->t_half_at_rise, std::pow(10.0, 1.2 + 0.1 * logit(0.5 * at_rise / 0.13))) < 0.05);
    REQUIRE(r.ntk->lead_at_rise_decades);
    CHECK(*r.ntk->lead_at_rise_decades == doctest::Approx(decades_between(*r.ntk->t_half_at_rise, *r.test.t50)));
    CHECK(*r.ntk->lead_at_rise_decades > 2.5);
    CHECK_MESSAGE(r.verdict.find(fmt::format(" by step {:.0f}, {:.1f} decades before)", *r.ntk->t_half_at_rise,
                                             *r.ntk->lead_at_rise_decades)) != std::string::npos,
                  r.verdict);
    // A kernel that moves once, after the rise, gets no such note.
    SyntheticRun once;
    once.ntk = late;
    once.probe_steps = log_steps(40);
    test::TempDir tmp2;
    const RunReport o = write_and_analyze(once, tmp2);
    CHECK_MESSAGE(o.verdict.find("half of its largest distance") == std::string::npos, o.verdict);
    // Moving only after the rise, it has covered half of its distance at the rise close to the rise.
    REQUIRE(o.ntk->lead_at_rise_decades);
    CHECK(std::abs(*o.ntk->lead_at_rise_decades) < 0.25);  // "with" it

    // Early to 0.05, then moving on through the rise to 0.15: half of its largest distance comes
    // with the rise, half of its distance at the rise 2.7 decades before. Both are named.
    SyntheticRun through;
    const Curve start = log_sigmoid(0, 0.05, 1.2, 0.1), on = log_sigmoid(0, 0.1, 4.2, 0.2);
    through.ntk = [=](double t) { return start(t) + on(t); };
    through.probe_steps = log_steps(40);
    test::TempDir tmp3;
    const RunReport w = write_and_analyze(through, tmp3);
    REQUIRE(w.ntk->lead_decades);
    CHECK(std::abs(*w.ntk->lead_decades) < 0.25);
    CHECK_MESSAGE(w.verdict.find("NTK moved with the test rise (lead ") != std::string::npos, w.verdict);
    CHECK_MESSAGE(w.verdict.find("it had covered half of its distance at the rise by step ") != std::string::npos, w.verdict);
    // Without a delay, a lead says nothing: no such note.
    SyntheticRun prompt = through;
    prompt.test = log_sigmoid(0.2, 0.9, 2.05, 0.1);
    test::TempDir tmp4;
    const RunReport p = write_and_analyze(prompt, tmp4);
    CHECK_MESSAGE(p.verdict.rfind("no delay", 0) == 0, p.verdict);
    CHECK_MESSAGE(p.verdict.find("half of its distance at the rise") == std::string::npos, p.verdict);
  }

  TEST_CASE("capacity that rises after the test rise, and NTK that moves with it") {
    test::TempDir tmp;
    SyntheticRun run;
    run.ntk = log_sigmoid(0, 0.4, 4.05, 0.1);
    run.capacity = log_sigmoid(0.1, 0.5, 4.6, 0.1);
    run.probe_steps = log_steps(40);
    const RunReport r = write_and_analyze(run, tmp);
    CHECK_MESSAGE(r.verdict.find("NTK moved with the test rise") != std::string::npos, r.verdict);
    CHECK_MESSAGE(r.verdict.find("output-layer capacity rose 0.6 decades after the test rise") != std::string::npos,
                  r.verdict);
  }

  TEST_CASE("a run in progress is reported as such, on what it logged") {
    test::TempDir tmp;
    SyntheticRun run;
    run.steps = log_steps(20, 3e4);
    run.status = "running";
    const RunReport r = write_and_analyze(run, tmp);
    CHECK(r.status == "running");
    CHECK(r.last_step == 3e4);
    CHECK(r.verdict.rfind("(in progress at step 30000", 0) == 0);
  }

  TEST_CASE("a torn last line is left out with a note; a torn middle line is an error naming it") {
    test::TempDir tmp;
    SyntheticRun{}.write(tmp.path());
    { std::ofstream(tmp / "metrics.csv", std::ios::app) << "100001,0,0.1"; }
    const RunReport r = analyze_run(tmp.path());
    bool noted = false;
    for (const auto& n : r.notes) noted |= n.find("last line is incomplete") != std::string::npos;
    CHECK(noted);
    { std::ofstream(tmp / "metrics.csv", std::ios::app) << "\n100002,0,0,1,0,1,1,1,0\n"; }
    CHECK_THROWS_WITH(analyze_run(tmp.path()), doctest::Contains("fields where the header has 9"));
  }

  TEST_CASE("bad metrics name the file, the line and what is wrong") {
    test::TempDir tmp;
    CHECK_THROWS_WITH(analyze_run(tmp / "nowhere"), doctest::Contains("no such run directory"));
    CHECK_THROWS_WITH(analyze_run(tmp.path()), doctest::Contains("no metrics.csv"));
    std::ofstream(tmp / "metrics.csv").close();
    CHECK_THROWS_WITH(analyze_run(tmp.path()), doctest::Contains("metrics.csv: the file is empty"));
    std::ofstream(tmp / "metrics.csv") << "step,train_accuracy,test_accuracy\n";
    CHECK_THROWS_WITH(analyze_run(tmp.path()), doctest::Contains("no rows with accuracies"));
    std::ofstream(tmp / "metrics.csv") << "step,train_accuracy,test_accuracy\n0,0.1,0.1\n1,high,0.1\n";
    CHECK_THROWS_WITH(analyze_run(tmp.path()),
                      doctest::Contains("metrics.csv:3: column 'train_accuracy' holds 'high', not a number"));
    std::ofstream(tmp / "metrics.csv") << "step,train_accuracy,test_accuracy\n5,0.1,0.1\n2,0.1,0.1\n";
    CHECK_THROWS_WITH(analyze_run(tmp.path()), doctest::Contains("metrics.csv:3: step 2 does not come after step 5"));
    std::ofstream(tmp / "metrics.csv") << "step,test_accuracy\n0,0.1\n";
    CHECK_THROWS_WITH(analyze_run(tmp.path()), doctest::Contains("no column 'train_accuracy'"));
  }

  TEST_CASE("a broken ntk.csv or geometry.csv is a note; the rest is reported") {
    test::TempDir tmp;
    SyntheticRun run;
    run.ntk = log_sigmoid(0, 0.4, 3, 0.1);
    run.capacity = log_sigmoid(0.1, 0.5, 4.1, 0.1);
    run.write(tmp.path());
    std::ofstream(tmp / "geometry.csv") << "step,layer,capacity\n0,output,zero\n";
    fs::remove(tmp / "ntk.csv");
    const RunReport r = analyze_run(tmp.path());
    CHECK(r.test.t50);
    CHECK(r.layers.empty());
    CHECK_FALSE(r.ntk);
    std::string notes;
    for (const auto& n : r.notes) notes += n + "\n";
    CHECK(notes.find("no ntk.csv") != std::string::npos);
    CHECK(notes.find("geometry.csv:2: column 'capacity' holds 'zero'") != std::string::npos);
  }

  TEST_CASE("a failed report never replaces a good summary.json") {
    test::TempDir tmp;
    SyntheticRun{}.write(tmp / "run");
    ReportCommand cmd;
    cmd.runs = {tmp / "run"};
    cmd.figures = false;
    CHECK(run_report_command(cmd) == 0);
    std::ifstream in(tmp / "run" / "summary.json");
    const std::string good((std::istreambuf_iterator<char>(in)), {});
    CHECK(nlohmann::json::parse(good)["test_accuracy"]["t50"].get<double>() > 0);
    std::ofstream(tmp / "run" / "metrics.csv") << "step,train_accuracy,test_accuracy\n0,0.1,oops\n";
    CHECK(run_report_command(cmd) == 1);
    std::ifstream again(tmp / "run" / "summary.json");
    CHECK(std::string((std::istreambuf_iterator<char>(again)), {}) == good);
  }

  TEST_CASE("runs on different datasets given together are named in a warning") {
    test::TempDir tmp;
    SyntheticRun a, b;
    b.dataset = "fashion-mnist";
    a.write(tmp / "a");
    b.write(tmp / "b");
    const auto warnings = comparability_warnings({analyze_run(tmp / "a"), analyze_run(tmp / "b")});
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find((tmp / "b").string()) != std::string::npos);
    CHECK(warnings[0].find("fashion-mnist") != std::string::npos);
  }
}

TEST_SUITE("report") {
  TEST_CASE("runs are named by as many of their directories' last parts as tell them apart") {
    const auto labels = [](const std::vector<std::string>& dirs) {
      std::vector<RunReport> runs(dirs.size());
      for (std::size_t i = 0; i < dirs.size(); ++i) runs[i].dir = dirs[i];
      return run_labels(runs);
    };
    using names = std::vector<std::string>;
    CHECK(labels({"runs/sweep/a", "runs/sweep/b/"}) == names{"a", "b"});
    CHECK(labels({"runs/init8/seed=0", "runs/init2/seed=0", "runs/init2/seed=1"}) ==
          names{"init8/seed=0", "init2/seed=0", "init2/seed=1"});
    CHECK(labels({"p/a/x", "q/a/x"}) == names{"p/a/x", "q/a/x"});
    CHECK(labels({"runs/x", "./runs/x/"}) == names{"runs/x", "./runs/x/"});  // one run twice: as given
  }
  // A sweep's table: one row per run, a column per recipe key the runs differ in, the onsets as
  // report_json has them, and nothing where an onset did not happen.
  TEST_CASE("onsets.csv: a row per run, the recipe keys that differ, empty where nothing happened") {
    test::TempDir tmp;
    SyntheticRun delayed, early, flat;
    delayed.ntk = early.ntk = flat.ntk = log_sigmoid(0, 0.4, 3, 0.1);
    delayed.capacity = early.capacity = flat.capacity = log_sigmoid(0.1, 0.5, 4.1, 0.1);
    delayed.radius = log_sigmoid(5, 1, 4.2, 0.1);
    delayed.output_k = [](double t) { return t < 50 ? 2 : 1; };  // K changes before the fit only
    delayed.hidden_radius = log_sigmoid(1, 0.8, 4.4, 0.1);
    flat.radius = log_sigmoid(5, 1, 4.2, 0.1);
    flat.output_k = [](double t) { return t > 1000 && t < 3000 ? 2 : 1; };
    early.test = log_sigmoid(0.2, 0.9, 2.05, 0.1);
    flat.test = constant(0.2);
    delayed.recipe_tables = "[model]\ninit_scale = 8.0\nwidths = [16, 12]\n[train]\nseed = 1\n";
    early.recipe_tables = "[model]\ninit_scale = 2.0\nwidths = [16, 12]\n[train]\nseed = 1\n";
    flat.recipe_tables = "[model]\ninit_scale = 1.0\nwidths = [16, 8]\n[train]\nseed = 1\n";
    std::vector<RunReport> reports;
    for (auto [run, name] : {std::pair<SyntheticRun*, const char*>{&delayed, "delayed"}, {&early, "early"}, {&flat, "flat"}}) {
      run->write(tmp / name);
      reports.push_back(analyze_run(tmp / name));
    }
    CHECK(differing_recipe_keys(reports) == std::vector<std::string>{"model.init_scale", "model.widths"});
    std::istringstream csv(onsets_csv(reports));
    std::string header, line;
    std::getline(csv, header);
    CHECK(header.rfind("run,condition,model.init_scale,model.widths,status,last_step,t_fit,test_t10,test_t50,test_t90,delay_decades,", 0) == 0);
    std::vector<std::string> rows;
    while (std::getline(csv, line)) rows.push_back(line);
    REQUIRE(rows.size() == 3);
    // The widths hold commas: quoted. Then the fields after them split plainly.
    const auto fields_after_widths = [](const std::string& row) {
      const std::size_t close = row.rfind("]\",");
      REQUIRE(close != std::string::npos);
      std::vector<std::string> f;
      std::istringstream rest(row.substr(close + 3));
      for (std::string x; std::getline(rest, x, ',');) f.push_back(x);
      if (!row.empty() && row.back() == ',') f.emplace_back();
      return f;
    };
    // Its condition: the keys the runs differ in, short, as one quoted field.
    CHECK(rows[0].rfind((tmp / "delayed").string() + ",\"init_scale=8 widths=[16, 12]\",8,\"[16, 12]\",", 0) == 0);
    CHECK(header.find(",capacity_lag_decades,radius_t50,radius_lag_decades,dimension_t50,dimension_lag_decades,"
                      "center_correlation_t50,center_correlation_lag_decades,k_min,k_max,layers.1:capacity_t50,"
                      "layers.1:capacity_lag_decades,layers.1:radius_lag_decades,layers.1:dimension_lag_decades,"
                      "layers.1:center_correlation_lag_decades") != std::string::npos);
    const auto d = fields_after_widths(rows[0]);
    REQUIRE(d.size() == 30);
    CHECK(d[25].empty());  // layers.1's capacity stays flat
    CHECK(d[26].empty());
    CHECK(std::stod(d[27]) == doctest::Approx(report_json(reports[0])["layers"][0]["radius"]["lag_decades_after_test_t50"].get<double>()));
    CHECK(std::abs(std::stod(d[27]) - 0.4) < 0.05);
    CHECK(d[28].empty());  // its dimension and center correlation hold
    CHECK(d[29].empty());
    const auto j = report_json(reports[0]);
    CHECK(d[0] == "finished");
    CHECK(std::stod(d[2]) == doctest::Approx(j["t_fit"].get<double>()));
    CHECK(std::stod(d[4]) == doctest::Approx(j["test_accuracy"]["t50"].get<double>()));
    CHECK(std::stod(d[6]) == doctest::Approx(j["delay_decades"].get<double>()));
    CHECK(d[7] == "train");
    CHECK(std::stod(d[10]) == doctest::Approx(j["ntk"]["train"]["lead_decades_over_test_t50"].get<double>()));
    CHECK(std::stod(d[12]) == doctest::Approx(j["ntk"]["train"]["lead_decades_at_test_t50"].get<double>()));
    CHECK(std::stod(d[16]) == doctest::Approx(j["layers"][1]["lag_decades_after_test_t50"].get<double>()));
    CHECK(std::stod(d[17]) == doctest::Approx(j["layers"][1]["radius"]["t50"].get<double>()));
    CHECK(std::stod(d[18]) == doctest::Approx(j["layers"][1]["radius"]["lag_decades_after_test_t50"].get<double>()));
    CHECK(d[19].empty());  // the dimension holds
    CHECK(d[21].empty());  // so does the center correlation
    CHECK(d[23] == "1");   // K after the fit
    CHECK(d[24] == "1");
    CHECK(rows[1].rfind((tmp / "early").string() + ",\"init_scale=2 widths=[16, 12]\",2,", 0) == 0);
    const auto f = fields_after_widths(rows[2]);
    REQUIRE(f.size() == 30);
    CHECK(f[17].empty());  // K varies after the fit: no radius onset
    CHECK(f[23] == "1");
    CHECK(f[24] == "2");
    CHECK(f[3].empty());   // test_t10: no rise
    CHECK(f[4].empty());   // test_t50
    CHECK(f[6].empty());   // no delay to measure
    CHECK(f[10].empty());  // no lead without a rise
    CHECK(f[11].empty());  // nor a distance at the rise
    CHECK(f[12].empty());
    CHECK_FALSE(f[8].empty());  // but the kernel moved
  }
}

// Runs the figure script through the binary on synthetic runs; tests/main.cpp skips the suite
// (exit 77) where the interpreter has no matplotlib.
TEST_SUITE("report_figures") {
  TEST_CASE("grokscope report draws every figure of every run, and the side-by-side one") {
    test::TempDir tmp;
    SyntheticRun grokking, control;
    grokking.ntk = control.ntk = log_sigmoid(0, 0.4, 3, 0.1);
    grokking.capacity = log_sigmoid(0.1, 0.5, 4.1, 0.1);
    control.test = log_sigmoid(0.2, 0.9, 2.1, 0.1);
    control.capacity = log_sigmoid(0.1, 0.5, 2.2, 0.1);
    grokking.write(tmp / "runs" / "grokking");
    control.write(tmp / "runs" / "control");
    // The pairwise kernel distances the runner writes at the final step.
    const std::vector<float> steps{0, 10, 100, 1000};
    std::vector<float> d(16);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i * 4 + j] = 0.1f * static_cast<float>(std::abs(i - j));
    io::save_npy(tmp / "runs" / "grokking" / "ntk_pairwise_steps.npy", Tensor::from(steps, {4}));
    io::save_npy(tmp / "runs" / "grokking" / "ntk_pairwise_train.npy", Tensor::from(d, {4, 4}));

    const std::string out = report_output(
        fmt::format("{} report {} {}", GROKSCOPE_BINARY, (tmp / "runs" / "grokking").string(), (tmp / "runs" / "control").string()));
    INFO(out);
    CHECK(out.find("no delay") != std::string::npos);
    const auto check_png = [](const fs::path& png) {
      INFO(png.string());
      REQUIRE(fs::exists(png));
      CHECK(fs::file_size(png) > 10000);  // a drawn figure, not an empty canvas
      std::ifstream in(png, std::ios::binary);
      char magic[8];
      in.read(magic, 8);
      CHECK(std::string(magic + 1, 3) == "PNG");
      CHECK(fs::exists(fs::path(png).replace_extension(".pdf")));
    };
    for (const char* name : {"training", "ntk", "ntk_pairwise", "geometry", "overlay"})
      check_png(tmp / "runs" / "grokking" / "figures" / (std::string(name) + ".png"));
    for (const char* name : {"training", "ntk", "geometry", "overlay"})
      check_png(tmp / "runs" / "control" / "figures" / (std::string(name) + ".png"));
    check_png(tmp / "runs" / "comparison.png");
    check_png(tmp / "runs" / "onsets.png");
  }

  // The figures' labels are the table's: the script's run_labels against the binary's.
  TEST_CASE("the figures name runs as the table does") {
    const std::vector<std::string> dirs = {"runs/init8/seed=0", "runs/init2/seed=0/", "other/init2/seed=1", "x"};
    std::vector<RunReport> runs(dirs.size());
    for (std::size_t i = 0; i < dirs.size(); ++i) runs[i].dir = dirs[i];
    std::string expected, list;
    for (const auto& l : run_labels(runs)) expected.append(l).append("\n");
    for (const auto& d : dirs) list.append(list.empty() ? "" : ", ").append("'").append(d).append("'");
    const std::string out = report_output(fmt::format(
        "/usr/bin/python3 -c \"import sys; sys.path.insert(0, '{}/tools'); import report_figures as f; "
        "print('\\n'.join(f.run_labels([{}])))\"",
        GROKSCOPE_SOURCE_DIR, list));
    CHECK(out == expected);
  }

  // tools/compare_geometry.py: two probes of the same runs, row by row and onset by onset.
  TEST_CASE("compare_geometry counts where two probes of the same runs differ") {
    test::TempDir tmp;
    const std::string header = "step,layer,capacity,capacity_se,radius,dimension,center_correlation,k\n";
    const auto write = [&](const fs::path& dir, const std::string& rows) {
      fs::create_directories(dir);
      std::ofstream(dir / "geometry.csv") << header << rows;
    };
    // Run a: K differs at step 10; the output capacity moves by 2% at step 10 and by 0.5% at step 0.
    write(tmp / "old" / "cond" / "a", "0,input,0.1,0,1,1,0.2,1\n0,output,0.2,0,1,1,0.2,1\n10,input,0.1,0,1,1,0.2,1\n10,output,0.3,0,1,1,0.2,2\n");
    write(tmp / "new" / "cond" / "a", "0,input,0.1,0,1,1,0.2,1\n0,output,0.201,0,1,1,0.2,1\n10,input,0.1,0,1,1,0.2,1\n10,output,0.306,0,1,1,0.2,1\n");
    std::ofstream(tmp / "old" / "onsets.csv") << "run,capacity_lag_decades,layers.2:capacity_lag_decades\n"
                                              << (tmp / "old" / "cond" / "a").string() << ",0.30,\n";
    std::ofstream(tmp / "new" / "onsets.csv") << "run,capacity_lag_decades,layers.2:capacity_lag_decades\n"
                                              << (tmp / "new" / "cond" / "a").string() << ",0.25,0.5\n";
    const std::string script = fmt::format("/usr/bin/python3 {}/tools/compare_geometry.py", GROKSCOPE_SOURCE_DIR);
    std::string out = report_output(fmt::format("{} {} {}", script, (tmp / "old").string(), (tmp / "new").string()));
    INFO(out);
    // Columns aligned by spaces: compared with each run of spaces as one.
    out.erase(std::unique(out.begin(), out.end(), [](char a, char b) { return a == ' ' && b == ' '; }), out.end());
    CHECK(out.find("1 runs, 4 layer-steps; K differs at 1 (25.0%); the capacity moved by more than 1% at 1") != std::string::npos);
    CHECK(out.find("\ncond input 2 0 0 none\n") != std::string::npos);
    CHECK(out.find("\ncond output 2 1 1 2% (a, step 10)\n") != std::string::npos);
    CHECK(out.find("\ncapacity_lag_decades cond 0.050 a\n") != std::string::npos);
    CHECK(out.find("\nlayers.2:capacity_lag_decades cond - changed in 1\n") != std::string::npos);

    // What it cannot compare is named, and it exits non-zero.
    const auto refusal = [&](const std::string& args) {
      std::FILE* p = popen(fmt::format("{} {} 2>&1", script, args).c_str(), "r");
      REQUIRE(p != nullptr);
      std::string text;
      char buf[4096];
      while (std::fgets(buf, sizeof buf, p)) text += buf;
      const int status = pclose(p);
      CHECK(WEXITSTATUS(status) != 0);
      return text;
    };
    write(tmp / "old" / "cond" / "b", "0,input,0.1,0,1,1,0.2,1\n");
    CHECK(refusal((tmp / "old").string() + " " + (tmp / "new").string())
              .find((tmp / "new" / "cond" / "b" / "geometry.csv").string() + " is missing (1 of 2 runs") != std::string::npos);
    fs::create_directories(tmp / "bare" / "b");
    std::ofstream(tmp / "bare" / "b" / "geometry.csv") << "step,layer,capacity\n0,input,0.1\n";
    CHECK(refusal((tmp / "old" / "cond" / "b").string() + " " + (tmp / "bare" / "b").string())
              .find((tmp / "bare" / "b" / "geometry.csv").string() + " has no column k") != std::string::npos);
  }

  // Nine columns would not fit a page: a sweep gets the onsets figure, a row per run, and is told so.
  TEST_CASE("more runs than fit side by side get the onsets figure only") {
    test::TempDir tmp;
    std::string cmd = fmt::format("{} report", GROKSCOPE_BINARY);
    for (int i = 0; i < 9; ++i) {
      SyntheticRun run;  // metrics only: no probe figures, so that the suite stays quick
      run.test = log_sigmoid(0.2, 0.9, 2.5 + 0.2 * i, 0.1);
      const fs::path dir = tmp / "sweep" / fmt::format("run{}", i);
      run.write(dir);
      cmd.append(" ").append(dir.string());  // not " " + string: GCC 12's -Wrestrict misfires on it
    }
    const std::string out = report_output(cmd);
    INFO(out);
    CHECK(fs::file_size(tmp / "sweep" / "onsets.png") > 10000);
    CHECK_FALSE(fs::exists(tmp / "sweep" / "comparison.png"));
    CHECK(out.find("9 runs are too many side by side") != std::string::npos);
    CHECK(out.find("onsets.png") != std::string::npos);
    CHECK(out.find("side by side: ") == std::string::npos);
  }
}
