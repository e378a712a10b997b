#include <numeric>
#include <set>

#include "helpers.h"

using namespace gs;

TEST_SUITE("rng") {
  TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
    using W = std::array<std::uint32_t, 4>;
    CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) == W{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
    CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
          W{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
    CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
          W{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
  }

  TEST_CASE("a seed fixes the draws; seeds and streams differ") {
    auto draw = [](std::uint64_t seed, Stream stream) {
      Generator g(seed, stream);
      Tensor t = Tensor::empty(Shape{64}, DType::f64);
      g.uniform(t, -1, 1);
      return t.to_vector();
    };
    CHECK(draw(7, Stream::init) == draw(7, Stream::init));
    CHECK(draw(7, Stream::init) != draw(8, Stream::init));
    CHECK(draw(7, Stream::init) != draw(7, Stream::shuffle));
  }

  TEST_CASE("the offset resumes a stream exactly") {
    Generator a(3), b(3);
    Tensor t = Tensor::empty(Shape{10}, DType::f64);
    a.uniform(t, 0, 1);
    auto next = a.permutation(50);
    b.set_offset(a.offset() - 49);  // permutation(50) draws 49 blocks
    CHECK(b.permutation(50) == next);
  }

  // A large fill is shared between threads; each value still comes from its own counter, so it
  // equals the same draws made one value at a time (fills of one value never run in parallel).
  TEST_CASE("a large fill equals its values drawn one at a time") {
    const std::int64_t n = 40000;  // above the size from which a fill is split between threads
    Generator whole(5, Stream::test), single(5, Stream::test);
    Tensor u = Tensor::empty(Shape{n}, DType::f64), z = Tensor::empty(Shape{n}, DType::f64);
    Tensor one = Tensor::empty(Shape{1}, DType::f64);
    whole.uniform(u, -2, 3);
    whole.normal(z, 0.5, 2);
    const auto u_values = u.to_vector(), z_values = z.to_vector();
    int differing = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      single.uniform(one, -2, 3);
      differing += one.to_vector()[0] != u_values[static_cast<std::size_t>(i)];
    }
    for (std::int64_t i = 0; i < n; ++i) {
      single.normal(one, 0.5, 2);
      differing += one.to_vector()[0] != z_values[static_cast<std::size_t>(i)];
    }
    CHECK(differing == 0);
    CHECK(whole.offset() == single.offset());
  }

  TEST_CASE("f32 and f64 draws are the same numbers up to rounding") {
    Generator a(11), b(11);
    Tensor x = Tensor::empty(Shape{100}, DType::f32), y = Tensor::empty(Shape{100}, DType::f64);
    a.uniform(x, -0.5, 0.5);
    b.uniform(y, -0.5, 0.5);
    test::check_close(x, y.to_vector(), {1e-7, 0}, "f32 vs f64 uniform");
  }

  TEST_CASE("uniform and normal moments") {
    Generator g(2024);
    const std::int64_t n = 200000;
    Tensor u = Tensor::empty(Shape{n}, DType::f64);
    g.uniform(u, -2, 3);
    auto uv = u.to_vector();
    double mean = std::accumulate(uv.begin(), uv.end(), 0.0) / n;
    double var = 0, lo = 1e9, hi = -1e9;
    for (double v : uv) {
      var += (v - mean) * (v - mean) / n;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    // U(-2, 3): mean 0.5, variance 25/12; standard errors ~0.0032 and ~0.005.
    CHECK(std::abs(mean - 0.5) < 0.02);
    CHECK(std::abs(var - 25.0 / 12.0) < 0.03);
    CHECK(lo >= -2);
    CHECK(hi < 3);
    Tensor z = Tensor::empty(Shape{n}, DType::f64);
    g.normal(z, 1.0, 2.0);
    auto zv = z.to_vector();
    double zm = std::accumulate(zv.begin(), zv.end(), 0.0) / n, zs = 0;
    for (double v : zv) zs += (v - zm) * (v - zm) / n;
    CHECK(std::abs(zm - 1.0) < 0.02);
    CHECK(std::abs(std::sqrt(zs) - 2.0) < 0.02);
  }

  TEST_CASE("permutation is a permutation and is balanced") {
    Generator g(5);
    auto p = g.permutation(1000);
    std::set<std::int64_t> seen(p.begin(), p.end());
    CHECK(seen.size() == 1000);
    CHECK(*seen.begin() == 0);
    CHECK(*seen.rbegin() == 999);
    // Position of element 0 over many shuffles of 4: each place about 1/4 of the time.
    std::array<int, 4> where{};
    for (int t = 0; t < 8000; ++t) {
      auto q = g.permutation(4);
      for (int i = 0; i < 4; ++i)
        if (q[i] == 0) ++where[i];
    }
    for (int c : where) CHECK(std::abs(c - 2000) < 200);
  }
}
