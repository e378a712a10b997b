#pragma once
// A recipe is one condition of an experiment: data, model, optimizer, loss, schedule, seed.
// Recipes are TOML files (experiments/*.toml); every key has a default here, and a key that is
// unknown, of the wrong type or out of range stops the load with the file, line and what is allowed.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gs::experiments {

struct Recipe {
  std::string name, description;
  std::filesystem::path source;  // the file it came from

  struct Data {
    std::string dataset = "mnist";      // mnist | fashion-mnist | emnist-balanced | cifar10 | cifar100 | folder
    std::string path = "data/cache/mnist";
    std::int64_t train_size = 1000;     // rows of the training split used
    std::string subset = "first";       // first (torch Subset(range(n))) | random (seeded)
    std::string normalize = "unit";     // unit ([0, 1]) | standard (per-dataset mean and std)
    std::int64_t test_size = 0;         // 0: the whole test split
  } data;

  struct Model {
    std::string kind = "mlp";  // mlp | cnn
    std::vector<std::int64_t> widths{784, 200, 200, 10};  // mlp: input, hidden..., classes
    std::string activation = "relu";
    double init_scale = 1.0;
    double output_scale = 1.0;
  } model;

  struct Optimizer {
    std::string name = "adamw";  // adamw | adam | sgd
    double lr = 1e-3, weight_decay = 0.01;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
    double momentum = 0;                            // sgd
    bool nesterov = false;
  } optimizer;

  struct Train {
    std::string loss = "mse";  // mse (on one-hot targets, mean over all elements) | ce
    std::int64_t batch_size = 200;
    std::int64_t steps = 100000;
    bool drop_last = false;
    std::uint64_t seed = 0;
  } train;

  struct Schedule {
    // study: every step below 30, every 10th below 150, then `metric_points` log-spaced to the end;
    // every: every `metric_every` steps.
    std::string metrics = "study";
    std::int64_t metric_points = 150;
    std::int64_t metric_every = 100;
    std::int64_t probe_points = 30;          // log-spaced probe steps, step 0 included
    std::vector<std::int64_t> probe_steps;   // explicit probe steps instead; step 0, the initial weights, is always probed
  } schedule;

  struct Probe {
    std::int64_t train_size = 256, test_size = 256;  // class-balanced probe sets
    bool ntk = true;            // the NTK probe at every probe step (ntk.csv)
    bool save_kernels = false;  // also each step's K as ntk_kernels/step_N_{train,test}.npy (held kernels only)
    bool geometry = true;                // the geometry probe at every probe step (geometry.csv)
    std::int64_t geometry_per_class = 200;  // test points per class for it, as the study
    std::int64_t geometry_n_t = 200;        // Gaussian vectors per manifold
    bool geometry_center_structure = true;  // remove the class centers' shared structure first (step 2)
    std::int64_t geometry_center_k = 0;     // its K: 0, the K of least residual correlation at each step; N, N at every step
    double kappa = 0;                       // the margin, in [0, probe::max_kappa] (engine/probe/geometry.h)
  } probe;

  std::string to_toml() const;  // the resolved recipe, every key present
};

// Loads `path`, then applies overrides "section.key=value" (value in TOML syntax; a bare word
// is taken as a string), then validates everything.
Recipe load_recipe(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});
Recipe parse_recipe(const std::string& text, const std::string& origin, const std::vector<std::string>& overrides = {});

}  // namespace gs::experiments
