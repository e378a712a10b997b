#pragma once
// A tiny run the runner tests train: an MNIST-named IDX dataset of 4×4 images, a small MLP recipe
// for it, and a reader for the CSV files a run writes.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/idx.h"
#include "engine/rng.h"
#include "experiments/recipe.h"

namespace gs::test {

// An MNIST-named dataset of 4×4 images in which the class is the brightest quadrant (4 classes).
inline void write_tiny_mnist(const std::filesystem::path& dir, std::int64_t train, std::int64_t test) {
  Generator g(9, Stream::test);
  for (auto [prefix, n] : {std::pair<const char*, std::int64_t>{"train", train}, {"t10k", test}}) {
    data::IdxArray images{{n, 4, 4}, {}}, labels{{n}, {}};
    for (std::int64_t i = 0; i < n; ++i) {
      const int c = static_cast<int>(i % 4);
      labels.values.push_back(static_cast<std::uint8_t>(c));
      for (int r = 0; r < 4; ++r)
        for (int col = 0; col < 4; ++col) {
          const bool bright = (r / 2) * 2 + col / 2 == c;
          images.values.push_back(static_cast<std::uint8_t>((bright ? 150 : 0) + g.below(100)));
        }
    }
    data::write_idx(dir / (std::string(prefix) + "-images-idx3-ubyte"), images);
    data::write_idx(dir / (std::string(prefix) + "-labels-idx1-ubyte"), labels);
  }
}

inline experiments::Recipe tiny_recipe(const std::filesystem::path& data_dir, std::int64_t steps) {
  return experiments::parse_recipe(R"(
[data]
train_size = 64
[model]
widths = [16, 12, 10]
init_scale = 2
[train]
loss = "ce"
batch_size = 16
[optimizer]
lr = 0.01
[probe]
train_size = 8
test_size = 8
geometry_per_class = 4
)",
                      "tiny.toml",
                      {"data.path=" + data_dir.string(), "train.steps=" + std::to_string(steps), "schedule.probe_points=5"});
}

inline std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace gs::test
