// Replicates: runs of one condition that differ only in their seed, grouped, with the median and
// range of their onsets. Checked on synthetic runs whose onsets are known in closed form, against
// each run's own report, and through `grokscope report`.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "experiments/onsets_table.h"
#include "experiments/replicates.h"
#include "experiments/report.h"
#include "report_fixtures.h"
#include "temp_dir.h"

using namespace gs;
using namespace gs::experiments;
using namespace gs::test;
namespace fs = std::filesystem;

namespace {

// A run of condition `init_scale` with `seed`; test accuracy rises at 10^test_centre steps.
SyntheticRun seeded_run(double init_scale, int seed, double test_centre, double capacity_delay = 0.1) {
  SyntheticRun run;
  run.test = log_sigmoid(0.2, 0.9, test_centre, 0.15);
  run.ntk = log_sigmoid(0, 0.4, 3, 0.1);
  run.capacity = log_sigmoid(0.1, 0.5, test_centre + capacity_delay, 0.1);
  run.recipe_tables = fmt::format("[model]\ninit_scale = {:.1f}\n[train]\nseed = {}\n", init_scale, seed);
  return run;
}

// A CSV without quoted fields as rows of column -> field.
std::vector<std::map<std::string, std::string>> read_rows(const std::string& csv) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  {
    std::istringstream h(line);
    for (std::string x; std::getline(h, x, ',');) header.push_back(x);
  }
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream r(line);
    for (std::string x; std::getline(r, x, ',');) f.push_back(x);
    if (!line.empty() && line.back() == ',') f.emplace_back();
    REQUIRE(f.size() == header.size());
    auto& row = rows.emplace_back();
    for (std::size_t i = 0; i < f.size(); ++i) row[header[i]] = f[i];
  }
  return rows;
}

}  // namespace

TEST_SUITE("report") {
  TEST_CASE("spread_of: numpy's median, the least and the largest") {
    const Spread odd = spread_of({3, 1, 2});
    CHECK(odd.n == 3);
    CHECK(odd.median == 2);
    CHECK(odd.min == 1);
    CHECK(odd.max == 3);
    const Spread even = spread_of({4, 1, 3, 2});
    CHECK(even.median == 2.5);
    CHECK(even.min == 1);
    CHECK(even.max == 4);
    CHECK(spread_of({5}).median == 5);
    CHECK(spread_of({}).n == 0);
  }

  TEST_CASE("runs that differ only in their seed are grouped; each group's onsets match its runs'") {
    test::TempDir tmp;
    // Given interleaved: a delayed condition (×8, three seeds), an undelayed one (×2, two seeds, one
    // still running), a run that never generalizes (×1, one seed), and a run without a recipe.
    SyntheticRun a1 = seeded_run(8, 1, 4.0), a2 = seeded_run(8, 2, 4.2), a3 = seeded_run(8, 3, 4.4, 0.5);
    // The hidden layer's capacity half a decade after the test rise in two of them.
    a1.hidden_capacity = log_sigmoid(0.05, 0.3, 4.5, 0.1);
    a2.hidden_capacity = log_sigmoid(0.05, 0.3, 4.7, 0.1);
    // The output layer's radius falls with each run's test rise (centred where its test curve is),
    // its center correlation a decade before it; its dimension holds.
    a1.radius = log_sigmoid(5, 1, 4.0, 0.1);
    a2.radius = log_sigmoid(5, 1, 4.2, 0.1);
    a3.radius = log_sigmoid(5, 1, 4.4, 0.1);
    a1.center_correlation = log_sigmoid(0.3, 0.1, 3.0, 0.1);
    a2.center_correlation = log_sigmoid(0.3, 0.1, 3.2, 0.1);
    a3.center_correlation = log_sigmoid(0.3, 0.1, 3.4, 0.1);
    SyntheticRun b1 = seeded_run(2, 1, 2.05), b2 = seeded_run(2, 2, 2.1);
    b2.status = "running";
    SyntheticRun c1 = seeded_run(1, 1, 4.0);
    c1.test = constant(0.2);
    SyntheticRun orphan = seeded_run(8, 4, 4.0);
    const std::vector<std::pair<const SyntheticRun*, std::string>> order = {
        {&a1, "a1"}, {&b1, "b1"}, {&a2, "a2"}, {&orphan, "orphan"}, {&a3, "a3"}, {&b2, "b2"}, {&c1, "c1"}};
    std::vector<RunReport> reports;
    for (const auto& [run, name] : order) {
      run->write(tmp / name);
      if (name == "orphan") fs::remove(tmp / name / "recipe.toml");
      reports.push_back(analyze_run(tmp / name));
    }

    const auto groups = replicate_groups(reports);
    REQUIRE(groups.size() == 3);
    // onsets.csv names each run's condition, for pandas' groupby; the orphan has none.
    const auto onsets = read_rows(onsets_csv(reports));
    REQUIRE(onsets.size() == 7);
    const std::vector<std::string> expected = {"init_scale=8", "init_scale=2", "init_scale=8", "",
                                               "init_scale=8", "init_scale=2", "init_scale=1"};
    for (std::size_t i = 0; i < onsets.size(); ++i) CHECK(onsets[i].at("condition") == expected[i]);
    // The keys the runs differ in; the orphan's unknown recipe adds none.
    CHECK(onsets[0].count("model.init_scale") == 1);
    CHECK(onsets[0].count("train.seed") == 1);
    CHECK(onsets[0].count("data.dataset") == 0);
    CHECK(onsets[3].at("model.init_scale").empty());
    const ReplicateGroup &a = groups[0], &b = groups[1], &c = groups[2];
    CHECK(a.condition.label() == "init_scale=8");
    CHECK(b.condition.label() == "init_scale=2");
    CHECK(c.condition.label() == "init_scale=1");
    CHECK(a.condition.keys == std::vector<std::pair<std::string, std::string>>{{"model.init_scale", "8"}});
    CHECK(a.condition.runs == std::vector<std::size_t>{0, 2, 4});  // the orphan (3) is in no group
    CHECK(b.condition.runs == std::vector<std::size_t>{1, 5});
    CHECK(c.condition.runs == std::vector<std::size_t>{6});
    CHECK(a.condition.seeds == std::vector<std::string>{"1", "2", "3"});

    // The delayed condition: the spread is the three runs' own onsets, and near the closed form.
    CHECK(a.fit == 3);
    CHECK(a.rose == 3);
    CHECK(a.delayed == 3);
    CHECK(a.unfinished == 0);
    REQUIRE(a.test_t50.n == 3);
    CHECK(a.test_t50.median == doctest::Approx(*rise_t50(reports[2])));
    CHECK(a.test_t50.min == doctest::Approx(*rise_t50(reports[0])));
    CHECK(a.test_t50.max == doctest::Approx(*rise_t50(reports[4])));
    CHECK(std::abs(std::log10(a.test_t50.median) - 4.2) < 0.05);
    CHECK(a.t_fit.median == doctest::Approx(*reports[0].t_fit));
    CHECK(a.ntk_lead_decades.median == doctest::Approx(*reports[2].ntk->lead_decades));
    CHECK(a.ntk.before == 3);
    CHECK(a.ntk.with + a.ntk.after == 0);
    CHECK(a.capacity.with == 2);  // 0.1 decades after the rise
    CHECK(a.capacity.after == 1);  // 0.5 decades after it
    CHECK(a.capacity.before == 0);
    CHECK(a.capacity_lag_decades.max == doctest::Approx(*output_layer(reports[4])->lag_decades));
    CHECK(std::abs(a.capacity_lag_decades.max - 0.5) < 0.1);  // probed at 8 steps a decade
    CHECK(a.radius.with == 3);
    CHECK(a.radius.before + a.radius.after == 0);
    REQUIRE(a.radius_lag_decades.n == 3);
    CHECK(std::abs(a.radius_lag_decades.median) < 0.1);
    CHECK(a.center_correlation.before == 3);
    CHECK(a.center_correlation_lag_decades.median == doctest::Approx(*output_layer(reports[2])->center_correlation.lag_decades));
    CHECK(std::abs(a.center_correlation_lag_decades.median + 1) < 0.1);
    CHECK(a.dimension_lag_decades.n == 0);  // held
    CHECK(a.dimension.before + a.dimension.with + a.dimension.after == 0);

    // Two runs: the median is their mean. Not delayed, the kernel after the rise.
    REQUIRE(b.test_t50.n == 2);
    CHECK(b.test_t50.median == doctest::Approx(0.5 * (*rise_t50(reports[1]) + *rise_t50(reports[5]))));
    CHECK(b.rose == 2);
    CHECK(b.delayed == 0);
    CHECK(b.ntk.after == 2);
    CHECK(b.unfinished == 1);

    // Never generalized: no rise, no lead, no lag; the capacity's own midpoint is still there.
    CHECK(c.rose == 0);
    CHECK(c.test_t50.n == 0);
    CHECK(c.ntk_lead_decades.n == 0);
    CHECK(c.capacity_lag_decades.n == 0);
    CHECK(c.capacity_t50.n == 1);
    CHECK(c.ntk_t_half_max.n == 1);

    const std::string table = replicates_table(groups);
    INFO(table);
    CHECK(table.find("init_scale=8 (3 runs, seeds 1 2 3): fit in 3 of 3, test accuracy rose after the fit in 3 "
                     "(delayed in 3); NTK half-way: before the rise in 3, with it in 0, after it in 0; output-layer "
                     "capacity: before the rise in 0, with it in 2, after it in 1; its radius 0/3/0, center "
                     "correlation 3/0/0 (before/with/after)\n") != std::string::npos);
    CHECK(table.find("init_scale=2 (2 runs, seeds 1 2): fit in 2 of 2, test accuracy rose after the fit in 2 (delayed "
                     "in 0); NTK half-way: before the rise in 0, with it in 0, after it in 2") != std::string::npos);
    CHECK(table.find("; 1 not finished (onsets on what they logged)") != std::string::npos);
    CHECK(table.find("init_scale=1 (") == std::string::npos);  // one run: its verdict says it all
    CHECK(table.find(fmt::format("{:.0f} [{:.0f}, {:.0f}]", a.test_t50.median, a.test_t50.min, a.test_t50.max)) !=
          std::string::npos);
    CHECK(table.find("3/3") != std::string::npos);
    CHECK(table.find("0/2") != std::string::npos);

    const auto rows = read_rows(replicates_csv(groups));
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].at("model.init_scale") == "8");
    CHECK(rows[0].at("runs") == "3");
    CHECK(rows[0].at("seeds") == "1 2 3");
    CHECK(rows[0].at("delayed") == "3");
    CHECK(rows[0].at("capacity_after") == "1");
    CHECK(rows[0].at("radius_with") == "3");
    CHECK(rows[0].at("center_correlation_before") == "3");
    CHECK(rows[0].at("dimension_lag_decades_n") == "0");
    CHECK(std::stod(rows[0].at("radius_lag_decades_median")) == doctest::Approx(a.radius_lag_decades.median));
    CHECK(std::stod(rows[0].at("test_t50_median")) == doctest::Approx(a.test_t50.median));
    CHECK(std::stod(rows[0].at("test_t50_min")) == doctest::Approx(a.test_t50.min));
    CHECK(std::stod(rows[0].at("ntk_lead_decades_max")) == doctest::Approx(a.ntk_lead_decades.max));
    CHECK(rows[1].at("unfinished") == "1");
    CHECK(rows[2].at("test_t50_n") == "0");
    CHECK(rows[2].at("test_t50_median").empty());  // nothing rose: empty, not 0
    CHECK(rows[2].at("capacity_lag_decades_max").empty());
    CHECK(rows[2].at("capacity_t50_n") == "1");
    // The hidden layer's lag: in the two runs where it moved, their own lags; in none of the others.
    REQUIRE(a.layer_lag_decades.size() == 1);
    CHECK(a.layer_lag_decades[0].first == "layers.1");
    const Spread& hidden = a.layer_lag_decades[0].second;
    REQUIRE(hidden.n == 2);
    CHECK(hidden.min == doctest::Approx(std::min(*find_layer(reports[0], "layers.1")->lag_decades,
                                                 *find_layer(reports[2], "layers.1")->lag_decades)));
    CHECK(std::abs(hidden.median - 0.5) < 0.1);
    CHECK(rows[0].at("layers.1:capacity_lag_decades_n") == "2");
    CHECK(std::stod(rows[0].at("layers.1:capacity_lag_decades_median")) == doctest::Approx(hidden.median));
    CHECK(rows[1].at("layers.1:capacity_lag_decades_n") == "0");
    CHECK(rows[1].at("layers.1:capacity_lag_decades_median").empty());
  }

  TEST_CASE("no two runs of one condition, no replicates; one condition alone is named by its recipe") {
    test::TempDir tmp;
    seeded_run(8, 1, 4.0).write(tmp / "x8");
    seeded_run(2, 1, 2.05).write(tmp / "x2");
    seeded_run(8, 2, 4.1).write(tmp / "y8");
    const RunReport x8 = analyze_run(tmp / "x8"), x2 = analyze_run(tmp / "x2"), y8 = analyze_run(tmp / "y8");
    CHECK(replicate_groups({x8, x2}).empty());
    CHECK(replicates_table({}).empty());
    const auto groups = replicate_groups({x8, y8});
    REQUIRE(groups.size() == 1);
    CHECK(groups[0].condition.keys.empty());
    CHECK(groups[0].condition.label() == "synthetic");
    CHECK(replicates_csv(groups).rfind("condition,runs,seeds,", 0) == 0);
    // The rules the groups were made with define "delayed", in the counts and in the footnote.
    CHECK(groups[0].delayed == 2);
    CHECK(replicates_table(groups).find("delayed: t_50 after 2·t_fit") != std::string::npos);
    ReportRules strict;
    strict.no_delay_factor = 1000;
    const auto strict_groups = replicate_groups({x8, y8}, strict);
    REQUIRE(strict_groups.size() == 1);
    CHECK(strict_groups[0].delayed == 0);
    CHECK(replicates_table(strict_groups, strict).find("delayed: t_50 after 1000·t_fit") != std::string::npos);
  }

  // Recipe files differ in their name and description as well as in their settings: the settings
  // name the conditions, and the name only where no setting differs.
  TEST_CASE("conditions are named by the settings that differ, not by the recipes' names") {
    test::TempDir tmp;
    const auto write = [&](const char* dir, const char* name, double init_scale, int seed) {
      seeded_run(init_scale, seed, 4.0).write(tmp / dir);
      std::ofstream(tmp / dir / "recipe.toml")
          << fmt::format("name = '{0}'\ndescription = 'the {0} condition'\n[data]\ndataset = 'mnist'\n"
                         "[model]\ninit_scale = {1:.1f}\n[train]\nseed = {2}\n",
                         name, init_scale, seed);
      return analyze_run(tmp / dir);
    };
    const std::vector<RunReport> studies = {write("g1", "grok", 8, 1), write("g2", "grok", 8, 2), write("c1", "control", 2, 1)};
    const auto by_setting = replicate_groups(studies);
    REQUIRE(by_setting.size() == 2);
    CHECK(by_setting[0].condition.label() == "init_scale=8");
    CHECK(by_setting[1].condition.label() == "init_scale=2");
    const std::vector<RunReport> renamed = {write("x1", "x", 8, 1), write("x2", "x", 8, 2), write("y1", "y", 8, 1)};
    const auto by_name = replicate_groups(renamed);
    REQUIRE(by_name.size() == 2);
    CHECK(by_name[0].condition.label() == "name=x");
    CHECK(by_name[1].condition.label() == "name=y");
    CHECK(replicates_csv(by_name).rfind("condition,name,runs,", 0) == 0);
  }

  TEST_CASE("grokscope report prints and writes the replicates only when there are some") {
    test::TempDir tmp;
    seeded_run(8, 1, 4.0).write(tmp / "s1");
    seeded_run(8, 2, 4.2).write(tmp / "s2");
    seeded_run(2, 1, 2.05).write(tmp / "other");
    const std::string bin = GROKSCOPE_BINARY;
    const std::string with = report_output(fmt::format("{} report {} {} {} --no-figures --out {}", bin, (tmp / "s1").string(),
                                                       (tmp / "s2").string(), (tmp / "other").string(), (tmp / "out").string()));
    CHECK(with.find("replicates: runs whose recipes differ only in train.seed") != std::string::npos);
    CHECK(with.find("init_scale=8 (2 runs, seeds 1 2)") != std::string::npos);
    CHECK(with.find((tmp / "out" / "replicates.csv").string()) != std::string::npos);
    REQUIRE(fs::exists(tmp / "out" / "replicates.csv"));
    std::ifstream f(tmp / "out" / "replicates.csv");
    const std::string csv((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(csv.rfind("condition,model.init_scale,runs,seeds,", 0) == 0);

    const std::string without = report_output(fmt::format("{} report {} {} --no-figures --out {}", bin, (tmp / "s1").string(),
                                                          (tmp / "other").string(), (tmp / "out2").string()));
    CHECK(without.find("replicates") == std::string::npos);
    CHECK(fs::exists(tmp / "out2" / "onsets.csv"));
    CHECK_FALSE(fs::exists(tmp / "out2" / "replicates.csv"));
  }
}

// The figure, through the binary; tests/main.cpp skips the suite (exit 77) without matplotlib.
TEST_SUITE("report_figures") {
  TEST_CASE("replicates.png where some runs differ only in their seed, and not otherwise") {
    test::TempDir tmp;
    for (const auto& [name, run] : {std::pair<const char*, SyntheticRun>{"s1", seeded_run(8, 1, 4.0)},
                                    {"s2", seeded_run(8, 2, 4.2)}, {"other", seeded_run(2, 1, 2.05)}}) {
      SyntheticRun metrics_only = run;  // no probe figures, so that the suite stays quick
      metrics_only.ntk.reset();
      metrics_only.capacity.reset();
      (name == std::string("other") ? metrics_only : run).write(tmp / name);
    }
    const std::string bin = GROKSCOPE_BINARY;
    const std::string out = report_output(fmt::format("{} report {} {} {} --out {}", bin, (tmp / "s1").string(),
                                                      (tmp / "s2").string(), (tmp / "other").string(), (tmp / "with").string()));
    INFO(out);
    REQUIRE(fs::exists(tmp / "with" / "replicates.png"));
    CHECK(fs::file_size(tmp / "with" / "replicates.png") > 10000);
    CHECK(fs::exists(tmp / "with" / "replicates.pdf"));
    CHECK(out.find("replicates: " + (tmp / "with").string() + "/replicates.png") != std::string::npos);
    report_output(fmt::format("{} report {} {} --out {}", bin, (tmp / "s1").string(), (tmp / "other").string(),
                              (tmp / "without").string()));
    CHECK(fs::exists(tmp / "without" / "onsets.png"));
    CHECK_FALSE(fs::exists(tmp / "without" / "replicates.png"));
  }
}
