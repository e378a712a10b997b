#pragma once
// Datasets in memory: images as f32 [n, channels, height, width], labels as i32 [n]. Subsets,
// class-balanced probe sets and a batch iterator with torch DataLoader(shuffle=True) semantics.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace gs::data {

struct Dataset {
  std::string name;
  Tensor images;  // f32 [n, c, h, w]
  Tensor labels;  // i32 [n]
  std::int64_t classes = 0;
  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// unit: pixel / 255 (torchvision's ToTensor). standard: (pixel / 255 − mean) / std.
enum class Normalization { unit, standard };

struct IdxFiles {
  std::filesystem::path images, labels;
  std::int64_t classes = 10;
  bool transposed = false;  // EMNIST stores every image transposed (column-major)
  double mean = 0, std = 1;  // for Normalization::standard
};

Dataset load_idx(const std::string& name, const IdxFiles& files, Normalization norm);

enum class Split { train, test };
// The datasets grokscope knows by name, and what `dir` must hold:
//   mnist, fashion-mnist   {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
//   emnist-balanced        emnist-balanced-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]
//   cifar10                data_batch_{1..5}.bin, test_batch.bin (the binary version)
//   cifar100               train.bin, test.bin (fine labels)
//   folder                 train/<class>/<images>, test/<class>/<images>
Dataset load_named(const std::string& dataset, const std::filesystem::path& dir, Split split, Normalization norm);
std::vector<std::string> known_datasets();

// Rows `rows` of `d`, in that order (copies).
Dataset select(const Dataset& d, const std::vector<std::int64_t>& rows);
// 0..n-1: torch.utils.data.Subset(train, range(n)).
std::vector<std::int64_t> first_n(const Dataset& d, std::int64_t n);
std::vector<std::int64_t> random_subset(const Dataset& d, std::int64_t n, Generator& gen);
// n rows with the classes that occur in d as equal as n allows (the first n % k of the k
// classes get one more), drawn without replacement, returned grouped by class.
std::vector<std::int64_t> balanced_subset(const Dataset& d, std::int64_t n, Generator& gen);

struct Batch {
  Tensor images, labels;
  std::int64_t epoch = 0;
};
struct BatchRows {
  std::vector<std::int64_t> rows;  // of the dataset, in batch order
  std::int64_t epoch = 0;
};

// Reshuffles at the start of every epoch; the last partial batch is kept unless drop_last.
class Batches {
 public:
  Batches(const Dataset& d, std::int64_t batch_size, bool drop_last, Generator shuffle);
  Batch next();
  // The next batch's rows only, advancing as next() does: a GPU run takes them from its copy of
  // the dataset there.
  BatchRows next_rows();
  std::int64_t batches_per_epoch() const;
  // Where the iterator stands, for checkpoints: resuming from it yields the same batches.
  struct State {
    std::uint64_t generator_offset = 0;  // the shuffle generator's offset before this epoch's draw
    std::int64_t epoch = 0, position = 0;  // epochs count from 0; position within the epoch
  };
  State state() const { return state_; }
  void restore(const State& s);

 private:
  const Dataset& data_;
  std::int64_t batch_size_;
  bool drop_last_;
  Generator gen_;
  State state_;
  std::vector<std::int64_t> order_;
  void draw_order();
};

}  // namespace gs::data
