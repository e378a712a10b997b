#include "data/dataset.h"

#include <algorithm>
#include <cstring>

#include "data/idx.h"
#include "engine/error.h"

namespace gs::data {

namespace {

std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& base) {
  for (const auto& candidate : {dir / base, dir / (base + ".gz")})
    if (std::filesystem::exists(candidate)) return candidate;
  fail("{}: neither {} nor {}.gz is there; run data/fetch.sh, or point data.path at the folder that holds them",
       dir.string(), base, base);
}

struct Known {
  const char* name;
  const char* train_prefix;
  const char* test_prefix;
  std::int64_t classes;
  bool transposed;
  double mean, std;
};

// Means and standard deviations of the training pixels in [0, 1].
constexpr Known known[] = {
    {"mnist", "train", "t10k", 10, false, 0.1307, 0.3081},
    {"fashion-mnist", "train", "t10k", 10, false, 0.2860, 0.3530},
    {"emnist-balanced", "emnist-balanced-train", "emnist-balanced-test", 47, true, 0.1751, 0.3332},
};

}  // namespace

std::vector<std::string> known_datasets() {
  std::vector<std::string> names;
  for (const auto& k : known) names.emplace_back(k.name);
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
  Tensor x = Tensor::empty(Shape{n, 1, h, w}, DType::f32);
  float* p = x.data<float>();
  const double scale = norm == Normalization::unit ? 1.0 / 255.0 : 1.0 / (255.0 * files.std);
  const double shift = norm == Normalization::unit ? 0.0 : files.mean / files.std;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t c = 0; c < w; ++c) {
        const std::int64_t src = files.transposed ? (i * h + c) * w + r : (i * h + r) * w + c;
        p[(i * h + r) * w + c] = static_cast<float>(images.values[src] * scale - shift);
      }
  return {name, x, Tensor::from(y, Shape{n}), files.classes};
}

Dataset load_named(const std::string& dataset, const std::filesystem::path& dir, Split split, Normalization norm) {
  for (const auto& k : known) {
    if (dataset != k.name) continue;
    const std::string prefix = split == Split::train ? k.train_prefix : k.test_prefix;
    IdxFiles files{find_file(dir, prefix + "-images-idx3-ubyte"), find_file(dir, prefix + "-labels-idx1-ubyte"),
                   k.classes, k.transposed, k.mean, k.std};
    return load_idx(dataset + (split == Split::train ? "/train" : "/test"), files, norm);
  }
  fail("unknown dataset '{}'; grokscope reads mnist, fashion-mnist and emnist-balanced", dataset);
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
    GS_CHECK(want <= static_cast<std::int64_t>(pool.size()),
             "a class-balanced subset of {} rows needs {} of class {}, but {} has only {}; ask for fewer probe rows", n,
             want, present[j], d.name, pool.size());
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
  Dataset b = select(data_, rows);
  return {b.images, b.labels, state_.epoch};
}

}  // namespace gs::data
