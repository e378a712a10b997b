// Recipes: defaults, every shipped file, strict errors with file and line, --set overrides;
// and the metric and probe schedules.
#include "experiments/recipe.h"
#include "experiments/schedule.h"
#include "helpers.h"

#ifndef GROKSCOPE_SOURCE_DIR
#error "the tests need GROKSCOPE_SOURCE_DIR to find experiments/*.toml"
#endif

using namespace gs;
using namespace gs::experiments;

TEST_SUITE("recipe") {
  TEST_CASE("an empty recipe is all defaults; a named key changes only itself") {
    Recipe r = parse_recipe("", "empty.toml");
    CHECK(r.name == "empty");
    CHECK(r.data.dataset == "mnist");
    CHECK(r.model.widths == std::vector<std::int64_t>{784, 200, 200, 10});
    CHECK(r.optimizer.name == "adamw");
    Recipe s = parse_recipe("[model]\ninit_scale = 8\n[train]\nloss = \"ce\"\n", "s.toml");
    CHECK(s.model.init_scale == 8.0);
    CHECK(s.train.loss == "ce");
    CHECK(s.train.batch_size == 200);
  }

  TEST_CASE("every shipped recipe loads, and its resolved form loads back to the same recipe") {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(GROKSCOPE_SOURCE_DIR) / "experiments")) {
      if (entry.path().extension() != ".toml") continue;
      CAPTURE(entry.path().string());
      Recipe r = load_recipe(entry.path());
      CHECK(r.name == entry.path().stem().string());
      Recipe again = parse_recipe(r.to_toml(), "resolved.toml");
      CHECK(again.to_toml() == r.to_toml());
      CHECK(again.optimizer.beta1 == r.optimizer.beta1);  // the shortest digits read back as the same double
      CHECK(r.to_toml().find("beta1 = 0.9\n") != std::string::npos);  // not 0.90000000000000002
      ++count;
    }
    CHECK(count >= 17);
  }

  TEST_CASE("the study's conditions are encoded as the study ran them") {
    const auto dir = std::filesystem::path(GROKSCOPE_SOURCE_DIR) / "experiments";
    Recipe grok = load_recipe(dir / "mnist-init8-wd0.01.toml");
    CHECK(grok.model.init_scale == 8.0);
    CHECK(grok.optimizer.weight_decay == 0.01);
    CHECK(grok.train.loss == "mse");
    CHECK(grok.data.train_size == 1000);
    CHECK(grok.train.batch_size == 200);
    CHECK(grok.train.steps == 100000);
    Recipe small_out = load_recipe(dir / "mnist-init8-out0.001-wd0.toml");
    CHECK(small_out.model.output_scale == 0.001);
    CHECK(small_out.optimizer.weight_decay == 0.0);
    Recipe em = load_recipe(dir / "emnist-init10-n5000-wd0.001.toml");
    CHECK(em.model.widths == std::vector<std::int64_t>{784, 128, 512, 128, 47});
    CHECK(em.train.loss == "ce");
    CHECK(em.data.train_size == 5000);
    CHECK(em.train.batch_size == 128);
  }

  TEST_CASE("unknown keys, wrong types and impossible values name the file, line and what is allowed") {
    CHECK_THROWS_WITH_AS(parse_recipe("[train]\nsteps = 10\nstpes = 5\n", "r.toml"),
                         doctest::Contains("r.toml:3:9: unknown key 'stpes' in [train]; the keys of [train] are: loss, batch_size, steps"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[optimizer]\nlr = \"fast\"\n", "r.toml"),
                         doctest::Contains("r.toml:2:6: optimizer.lr must be a number, got a string"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[train]\nloss = \"hinge\"\n", "r.toml"),
                         doctest::Contains("r.toml:2:8: train.loss = \"hinge\" is not allowed; choose one of: mse, ce"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[train]\nbatch_size = 0\n", "r.toml"), doctest::Contains("train.batch_size must be at least 1"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[model]\nwidths = [784, 0, 10]\n", "r.toml"), doctest::Contains("must all be positive"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[model]\nwidths = [784, 2.5]\n", "r.toml"), doctest::Contains("an array of integers"), Error);
    // A value out of range points at its line, or at its --set; a default left as it is, at the recipe.
    CHECK_THROWS_WITH_AS(parse_recipe("[train]\nsteps = 0\n", "r.toml"),
                         doctest::Contains("r.toml:2:9: train.steps must be at least 1, got 0"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("", "r.toml", {"train.steps=-1"}),
                         doctest::Contains("--set train.steps: train.steps must be at least 1, got -1"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[data]\ntrain_size = 100\n", "r.toml"),
                         doctest::Contains("r.toml: train.batch_size 200 exceeds data.train_size 100"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[train]\nseed = -5\n", "r.toml"),
                         doctest::Contains("r.toml:2:8: train.seed must be a non-negative integer, got -5"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[data]\ndataset = \"svhn\"\n", "r.toml"), doctest::Contains("svhn\" is not known"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[data]\ntrain_size = 100\n[train]\nbatch_size = 200\n", "r.toml"),
                         doctest::Contains("exceeds data.train_size"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[trian]\nsteps = 1\n", "r.toml"), doctest::Contains("unknown key 'trian' at the top level"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[train\n", "r.toml"), doctest::Contains("r.toml:1:"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[schedule]\nprobe_steps = [0, 500]\n[train]\nsteps = 100\n", "r.toml"),
                         doctest::Contains("outside 0..100"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[probe]\ngeometry_center_k = -1\n", "r.toml"),
                         doctest::Contains("r.toml:2:21: probe.geometry_center_k must be 0 (the K of least residual correlation"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_recipe("[probe]\ngeometry_center_k = 2\ngeometry_center_structure = false\n", "r.toml"),
                         doctest::Contains("probe.geometry_center_k = 2 asks for a center structure that "
                                           "probe.geometry_center_structure = false turns off"),
                         Error);
    CHECK(parse_recipe("[probe]\ngeometry_center_k = 2\n", "r.toml").probe.geometry_center_k == 2);
  }

  TEST_CASE("--set overrides take TOML values or bare words, and are validated like the file") {
    Recipe r = parse_recipe("[train]\nsteps = 10\n", "r.toml", {"train.steps=2000", "data.path=/tmp/x y", "model.init_scale=2"});
    CHECK(r.train.steps == 2000);
    CHECK(r.data.path == "/tmp/x y");
    CHECK(r.model.init_scale == 2.0);
    CHECK(parse_recipe("", "r.toml", {"model.widths=[784, 10]"}).model.widths == std::vector<std::int64_t>{784, 10});
    CHECK_THROWS_WITH_AS(parse_recipe("", "r.toml", {"train.stepz=5"}), doctest::Contains("--set train.stepz: unknown key 'stepz' in [train]"),
                         Error);
    CHECK_THROWS_WITH_AS(parse_recipe("", "r.toml", {"steps=5"}), doctest::Contains("must be section.key"), Error);
    CHECK_THROWS_WITH_AS(parse_recipe("", "r.toml", {"train.steps=many"}), doctest::Contains("train.steps must be an integer, got a string"),
                         Error);
  }
}

TEST_SUITE("schedule") {
  TEST_CASE("the study's metric schedule: dense, then every 10th, then log-spaced to the end") {
    auto s = study_metric_steps(100000, 150);
    for (std::int64_t i = 0; i < 30; ++i) CHECK(s[static_cast<std::size_t>(i)] == i);
    for (std::int64_t i = 0; i < 12; ++i) CHECK(s[static_cast<std::size_t>(30 + i)] == 30 + 10 * i);
    CHECK(s[42] == 150);
    CHECK(s.back() == 100000);
    CHECK(s.size() > 42 + 140);  // a few rounding duplicates near 150 merge
    CHECK(s.size() <= 42 + 150);
    CHECK(std::is_sorted(s.begin(), s.end()));
    CHECK(std::adjacent_find(s.begin(), s.end()) == s.end());
    // log spacing: consecutive ratios in the tail are nearly constant
    const double r1 = double(s[s.size() - 1]) / double(s[s.size() - 2]), r2 = double(s[100]) / double(s[99]);
    CHECK(r1 == doctest::Approx(r2).epsilon(0.02));
  }

  TEST_CASE("short runs and other schedules") {
    CHECK(study_metric_steps(5, 150) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(every_steps(25, 10) == std::vector<std::int64_t>{0, 10, 20, 25});
    auto p = log_spaced_steps(1000, 4);
    CHECK(p == std::vector<std::int64_t>{0, 1, 10, 100, 1000});
    CHECK(log_spaced_steps(3, 30) == std::vector<std::int64_t>{0, 1, 2, 3});
  }
}
