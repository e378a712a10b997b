#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "engine/error.h"

namespace gs::data {

namespace {

std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& base) {
  for (const auto& candidate : {dir / base, dir / (base + ".gz")})
    if (std::filesystem::exists(candidate)) return candidate;
  // data/fetch.sh fetches MNIST and Fashion-MNIST; EMNIST has no mirror it can reach.
  const bool fetchable = base.find("emnist") == std::string::npos;
  fail("{}: neither {} nor {}.gz is there; {}, or point data.path at the folder that holds them", dir.string(), base,
       base,
       fetchable ? "run data/fetch.sh (mnist or fashion-mnist)"
                 : "EMNIST is not fetched by data/fetch.sh: download the balanced split's IDX files from NIST (the "
                   "gzip archive on nist.gov) and put them there");
}

// Means and standard deviations of the training pixels in [0, 1] (per channel for CIFAR).
struct Stats {
  std::vector<double> mean, std;
};

struct Known {
  const char* name;
  std::int64_t classes;
  Stats stats;
};

const std::vector<Known>& known() {
  static const std::vector<Known> table{
      {"mnist", 10, {{0.1307}, {0.3081}}},
      {"fashion-mnist", 10, {{0.2860}, {0.3530}}},
      {"emnist-balanced", 47, {{0.1751}, {0.3332}}},
      {"cifar10", 10, {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}}},
      {"cifar100", 100, {{0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}}},
      {"folder", 0, {{}, {}}},  // classes from the subfolders; standard normalization from the data
  };
  return table;
}

// u8 planar pixels [n, c, h, w] -> f32, normalized.
Dataset make_dataset(const std::string& name, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                     const std::vector<std::uint8_t>& pixels, std::vector<std::int32_t> labels, std::int64_t classes,
                     Normalization norm, Stats stats) {
  if (norm == Normalization::standard && stats.mean.empty()) {  // measure them (image folders)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      double sum = 0, sq = 0;
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t p = 0; p < h * w; ++p) {
          const double v = pixels[static_cast<std::size_t>((i * c + ch) * h * w + p)] / 255.0;
          sum += v;
          sq += v * v;
        }
      const double count = static_cast<double>(n * h * w), mean = sum / count;
      stats.mean.push_back(mean);
      stats.std.push_back(std::sqrt(std::max(sq / count - mean * mean, 1e-12)));
    }
  }
  Tensor x = Tensor::empty(Shape{n, c, h, w}, DType::f32);
  float* p = x.data<float>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const double scale = norm == Normalization::unit ? 1.0 / 255.0 : 1.0 / (255.0 * stats.std[ch]);
      const double shift = norm == Normalization::unit ? 0.0 : stats.mean[ch] / stats.std[ch];
      const std::size_t base = static_cast<std::size_t>((i * c + ch) * h * w);
      for (std::size_t q = 0; q < static_cast<std::size_t>(h * w); ++q)
        p[base + q] = static_cast<float>(pixels[base + q] * scale - shift);
    }
  return {name, x, Tensor::from(labels, Shape{n}), classes};
}

const Known& lookup(const std::string& dataset) {
  for (const auto& k : known())
    if (dataset == k.name) return k;
  std::string names;
  for (const auto& k : known()) names += (names.empty() ? "" : ", ") + std::string(k.name);
  fail("unknown dataset '{}'; grokscope reads {}", dataset, names);
}

}  // namespace

std::vector<std::string> known_datasets() {
  std::vector<std::string> names;
  for (const auto& k : known()) names.emplace_back(k.name);
  return names;
}

Dataset load_idx(const std::string& name, const IdxFiles& files, Normalization norm) {
  IdxArray images = read_idx(files.images), labels = read_idx(files.labels);
  GS_CHECK(images.dims.size() == 3, "{}: expected images [n, height, width], got a rank-{} IDX array", files.images.string(),
           images.dims.size());
  GS_CHECK(labels.dims.size() == 1, "{}: expected labels [n], got a rank-{} IDX array", files.labels.string(),
           labels.dims.size());
  const std::int64_t n = images.dims[0], h = images.dims[1], w = images.dims[2];
  GS_CHECK(labels.dims[0] == n, "{} holds {} images but {} holds {} labels; they must be a matching pair",
           files.images.string(), n, files.labels.string(), labels.dims[0]);
  GS_CHECK(!files.transposed || h == w, "{}: transposed images must be square, got {}×{}", files.images.string(), h, w);
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    GS_CHECK(labels.values[i] < files.classes, "{}: label {} at index {} is not below the {} classes of {}",
             files.labels.string(), int(labels.values[i]), i, files.classes, name);
    y[i] = labels.values[i];
  }
  if (files.transposed) {  // EMNIST: each image is stored column by column
    std::vector<std::uint8_t> upright(images.values.size());
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t r = 0; r < h; ++r)
        for (std::int64_t c = 0; c < w; ++c) upright[(i * h + r) * w + c] = images.values[(i * h + c) * w + r];
    images.values.swap(upright);
  }
  return make_dataset(name, n, 1, h, w, images.values, std::move(y), files.classes, norm, {{files.mean}, {files.std}});
}

Dataset load_named(const std::string& dataset, const std::filesystem::path& dir, Split split, Normalization norm) {
  const Known& k = lookup(dataset);
  const bool train = split == Split::train;
  const std::string name = dataset + (train ? "/train" : "/test");
  if (dataset == "cifar10" || dataset == "cifar100") {
    std::vector<std::filesystem::path> files;
    if (dataset == "cifar10" && train)
      for (int b = 1; b <= 5; ++b) files.push_back(dir / ("data_batch_" + std::to_string(b) + ".bin"));
    else if (dataset == "cifar10")
      files.push_back(dir / "test_batch.bin");
    else
      files.push_back(dir / (train ? "train.bin" : "test.bin"));
    auto r = read_cifar(files, dataset == "cifar10" ? CifarLabel::cifar10 : CifarLabel::cifar100_fine);
    return make_dataset(name, r.count, 3, 32, 32, r.pixels, std::move(r.labels), k.classes, norm, k.stats);
  }
  if (dataset == "folder") {
    auto f = read_image_folder(dir / (train ? "train" : "test"));
    if (!train)  // labels are indices into the sorted class names: both splits must name the same classes
      GS_CHECK(f.class_names == class_folders(dir / "train"),
               "{}: test/ and train/ hold different class subfolders; they must match for the labels to agree",
               dir.string());
    return make_dataset(name, f.count, f.channels, f.height, f.width, f.pixels, std::move(f.labels),
                        static_cast<std::int64_t>(f.class_names.size()), norm, {});
  }
  const bool emnist = dataset == "emnist-balanced";
  const std::string prefix = emnist ? (train ? "emnist-balanced-train" : "emnist-balanced-test") : (train ? "train" : "t10k");
  IdxFiles files{find_file(dir, prefix + "-images-idx3-ubyte"), find_file(dir, prefix + "-labels-idx1-ubyte"), k.classes,
                 emnist, k.stats.mean[0], k.stats.std[0]};
  return load_idx(name, files, norm);
}

Dataset select(const Dataset& d, const std::vector<std::int64_t>& rows) {
  const std::int64_t n = static_cast<std::int64_t>(rows.size()), per = d.images.numel() / std::max<std::int64_t>(d.size(), 1);
  Tensor x = Tensor::empty(Shape{n, d.images.size(1), d.images.size(2), d.images.size(3)}, DType::f32);
  std::vector<std::int32_t> y(rows.size());
  const float* src = d.images.data<float>();
  const std::int32_t* labels = d.labels.data<std::int32_t>();
  float* dst = x.data<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    GS_CHECK(rows[i] >= 0 && rows[i] < d.size(), "select: row {} is outside {} ({} rows)", rows[i], d.name, d.size());
    std::memcpy(dst + i * per, src + rows[i] * per, static_cast<std::size_t>(per) * sizeof(float));
    y[i] = labels[rows[i]];
  }
  return {d.name, x, Tensor::from(y, Shape{n}), d.classes};
}

std::vector<std::int64_t> first_n(const Dataset& d, std::int64_t n) {
  GS_CHECK(n >= 1 && n <= d.size(), "a subset of {} rows is impossible: {} has {} (choose 1 to {})", n, d.name, d.size(),
           d.size());
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

std::vector<std::int64_t> random_subset(const Dataset& d, std::int64_t n, Generator& gen) {
  GS_CHECK(n >= 1 && n <= d.size(), "a subset of {} rows is impossible: {} has {} (choose 1 to {})", n, d.name, d.size(),
           d.size());
  auto p = gen.permutation(d.size());
  p.resize(static_cast<std::size_t>(n));
  return p;
}

std::vector<std::int64_t> balanced_subset(const Dataset& d, std::int64_t n, Generator& gen) {
  GS_CHECK(n >= 1 && n <= d.size(), "a class-balanced subset of {} rows is impossible: {} has {}", n, d.name, d.size());
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(d.classes));
  const std::int32_t* labels = d.labels.data<std::int32_t>();
  for (auto i : gen.permutation(d.size())) by_class[labels[i]].push_back(i);
  std::vector<std::size_t> present;  // a training subset need not hold every class
  for (std::size_t c = 0; c < by_class.size(); ++c)
    if (!by_class[c].empty()) present.push_back(c);
  const auto k = static_cast<std::int64_t>(present.size());
  std::vector<std::int64_t> rows;
  for (std::int64_t j = 0; j < k; ++j) {
    const auto& pool = by_class[present[j]];
    const std::int64_t want = n / k + (j < n % k ? 1 : 0);
    if (want > static_cast<std::int64_t>(pool.size())) {
      std::size_t smallest = pool.size();
      for (auto c : present) smallest = std::min(smallest, by_class[c].size());
      fail("a class-balanced subset of {} rows needs {} of class {}, but {} has only {}; the largest balanced subset "
           "that fits has {} rows (probe.train_size, probe.test_size)",
           n, want, present[j], d.name, pool.size(), static_cast<std::int64_t>(smallest) * k);
    }
    rows.insert(rows.end(), pool.begin(), pool.begin() + want);
  }
  return rows;
}

Batches::Batches(const Dataset& d, std::int64_t batch_size, bool drop_last, Generator shuffle)
    : data_(d), batch_size_(batch_size), drop_last_(drop_last), gen_(shuffle) {
  GS_CHECK(batch_size >= 1, "batch size must be at least 1, got {}", batch_size);
  GS_CHECK(!drop_last || batch_size <= d.size(), "batch size {} with drop_last leaves no batch of {} ({} rows)", batch_size,
           d.name, d.size());
  state_.generator_offset = gen_.offset();
  draw_order();
}

std::int64_t Batches::batches_per_epoch() const {
  return drop_last_ ? data_.size() / batch_size_ : (data_.size() + batch_size_ - 1) / batch_size_;
}

void Batches::draw_order() {
  gen_.set_offset(state_.generator_offset);
  order_ = gen_.permutation(data_.size());  // torch.randperm at each epoch's start
}

void Batches::restore(const State& s) {
  state_ = s;
  draw_order();
}

Batch Batches::next() {
  const BatchRows b = next_rows();
  Dataset d = select(data_, b.rows);
  return {d.images, d.labels, b.epoch};
}

BatchRows Batches::next_rows() {
  const std::int64_t remaining = data_.size() - state_.position;
  if (remaining <= 0 || (drop_last_ && remaining < batch_size_)) {
    state_.generator_offset = gen_.offset();
    ++state_.epoch;
    state_.position = 0;
    draw_order();
  }
  const std::int64_t take = std::min(batch_size_, data_.size() - state_.position);
  std::vector<std::int64_t> rows(order_.begin() + state_.position, order_.begin() + state_.position + take);
  state_.position += take;
  return {std::move(rows), state_.epoch};
}

}  // namespace gs::data
