#pragma once
// Counter-based randomness (Philox4x32-10; Salmon et al., SC 2011). One seed fixes everything: a
// Generator is (seed, stream), and the k-th 128-bit block of a stream is philox(counter = (k,
// stream), key = seed), a pure function. Draws advance a block offset, so saving (seed, stream,
// offset) resumes a run exactly, and a GPU kernel computing block k gets the same numbers.
#include <array>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace gs {

std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> counter,
                                           std::array<std::uint32_t, 2> key);

// The streams one seed drives, kept apart so that changing one (say, the probe-set size) leaves
// the others (initialization, batch order) untouched.
enum class Stream : std::uint64_t { init = 1, shuffle = 2, probe = 3, data = 4, test = 99 };

class Generator {
 public:
  explicit Generator(std::uint64_t seed, Stream stream = Stream::init);
  Generator(std::uint64_t seed, std::uint64_t stream);

  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }
  std::uint64_t offset() const { return offset_; }  // blocks consumed so far
  void set_offset(std::uint64_t blocks) { offset_ = blocks; }

  std::array<std::uint32_t, 4> block(std::uint64_t index) const;  // does not advance

  // Fills t (f32 or f64, any device) with U[low, high) or N(mean, std²); element i of the draw
  // comes from block offset + i (one block per element: simple, and the same for both dtypes).
  void uniform(Tensor& t, double low, double high);
  void normal(Tensor& t, double mean, double std);
  double uniform();                              // one U[0, 1) draw, 53 bits
  std::uint64_t below(std::uint64_t n);          // uniform integer in [0, n)
  std::vector<std::int64_t> permutation(std::int64_t n);  // Fisher–Yates

 private:
  std::uint64_t seed_, stream_, offset_ = 0;
};

}  // namespace gs
