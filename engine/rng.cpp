#include "engine/rng.h"

#include <cmath>

namespace gs {

__extension__ typedef unsigned __int128 uint128;  // GCC and Clang; the product needs 128 bits

std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> c, std::array<std::uint32_t, 2> k) {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;  // multipliers
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;  // Weyl key increments
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(m0) * c[0], p1 = std::uint64_t(m1) * c[2];
    c = {std::uint32_t(p1 >> 32) ^ c[1] ^ k[0], std::uint32_t(p1), std::uint32_t(p0 >> 32) ^ c[3] ^ k[1],
         std::uint32_t(p0)};
    k[0] += w0;
    k[1] += w1;
  }
  return c;
}

Generator::Generator(std::uint64_t seed, Stream stream) : Generator(seed, static_cast<std::uint64_t>(stream)) {}
Generator::Generator(std::uint64_t seed, std::uint64_t stream) : seed_(seed), stream_(stream) {}

std::array<std::uint32_t, 4> Generator::block(std::uint64_t index) const {
  return philox4x32_10({std::uint32_t(index), std::uint32_t(index >> 32), std::uint32_t(stream_),
                        std::uint32_t(stream_ >> 32)},
                       {std::uint32_t(seed_), std::uint32_t(seed_ >> 32)});
}

namespace {
// 53 random bits from two words, as a double in [0, 1).
double unit(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (std::uint64_t(hi) << 21) ^ (std::uint64_t(lo) >> 11);
  return static_cast<double>(bits & ((std::uint64_t(1) << 53) - 1)) * 0x1.0p-53;
}

void fill_host(Tensor& t, const std::vector<double>& values) {
  Tensor host = Tensor::from(values, t.shape(), t.dtype(), Device::cpu);
  t.copy_(t.device() == Device::cpu ? host : host.to(t.device()));
}
}  // namespace

// Value i of a fill depends on its counter alone, so a large fill is split between threads with
// the same bits as a serial one. (The geometry probe draws ~10⁸ Gaussians for its t vectors.)
constexpr std::int64_t parallel_fill_from = 1 << 14;

void Generator::uniform(Tensor& t, double low, double high) {
  GS_CHECK(t.dtype() != DType::i32, "uniform: cannot fill {} with real numbers", t.describe());
  GS_CHECK(low <= high, "uniform: low ({}) must not exceed high ({})", low, high);
  const std::int64_t n = t.numel();
  std::vector<double> values(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) if (n >= parallel_fill_from)
  for (std::int64_t i = 0; i < n; ++i) {
    auto b = block(offset_ + static_cast<std::uint64_t>(i));
    values[static_cast<std::size_t>(i)] = low + (high - low) * unit(b[0], b[1]);
  }
  offset_ += values.size();
  fill_host(t, values);
}

void Generator::normal(Tensor& t, double mean, double std) {
  GS_CHECK(t.dtype() != DType::i32, "normal: cannot fill {} with real numbers", t.describe());
  GS_CHECK(std >= 0, "normal: the standard deviation must be non-negative, got {}", std);
  const std::int64_t n = t.numel();
  std::vector<double> values(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) if (n >= parallel_fill_from)
  for (std::int64_t i = 0; i < n; ++i) {
    auto b = block(offset_ + static_cast<std::uint64_t>(i));
    const double u1 = 1.0 - unit(b[0], b[1]);  // (0, 1]: the log stays finite
    const double u2 = unit(b[2], b[3]);
    values[static_cast<std::size_t>(i)] = mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);  // Box–Muller
  }
  offset_ += values.size();
  fill_host(t, values);
}

double Generator::uniform() {
  auto b = block(offset_++);
  return unit(b[0], b[1]);
}

std::uint64_t Generator::below(std::uint64_t n) {
  GS_CHECK(n > 0, "below(0): the range is empty");
  auto b = block(offset_++);
  const std::uint64_t r = (std::uint64_t(b[0]) << 32) | b[1];
  // Lemire's multiply-shift; its bias (n / 2^64) is far below anything a run could detect.
  return static_cast<std::uint64_t>((static_cast<uint128>(r) * n) >> 64);
}

std::vector<std::int64_t> Generator::permutation(std::int64_t n) {
  GS_CHECK(n >= 0, "permutation: n must be non-negative, got {}", n);
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[i] = i;
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[below(static_cast<std::uint64_t>(i + 1))]);
  return p;
}

}  // namespace gs
