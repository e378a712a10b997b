#include <cmath>
#include <cstdint>
#include <thread>

#include "engine/allocator.h"
#include "engine/step_graph.h"
#include "helpers.h"
#include "kernels/backend.h"

using namespace gs;

TEST_SUITE("tensor") {
  TEST_CASE("factories fill shape, dtype and values") {
    Tensor z = Tensor::zeros(Shape{2, 3}, DType::f64);
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.numel() == 6);
    CHECK(z.dtype() == DType::f64);
    CHECK(z.device() == Device::cpu);
    for (double v : z.to_vector()) CHECK(v == 0.0);
    Tensor f = Tensor::full(Shape{4}, 2.5, DType::f32);
    for (double v : f.to_vector()) CHECK(v == 2.5);
    Tensor s = Tensor::scalar(3.0);
    CHECK(s.rank() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.item() == 3.0);
  }

  TEST_CASE("dtype conversion round-trips and truncates to i32") {
    Tensor a = Tensor::from(std::vector<double>{1.5, -2.25, 3.0}, Shape{3}, DType::f64);
    CHECK(a.to(DType::f32).to_vector() == std::vector<double>{1.5, -2.25, 3.0});
    CHECK(a.to(DType::i32).to_int_vector() == std::vector<std::int32_t>{1, -2, 3});
    Tensor tiny = Tensor::from(std::vector<double>{0.1}, Shape{1}, DType::f64);
    CHECK(tiny.to(DType::f32).item() == static_cast<double>(0.1f));
  }

  TEST_CASE("views share storage; clones do not") {
    Tensor a = Tensor::from(std::vector<double>{0, 1, 2, 3, 4, 5}, Shape{3, 2}, DType::f64);
    Tensor v = a.view(Shape{2, 3});
    CHECK(v.same_storage(a));
    v.data<double>()[0] = 42;
    CHECK(a.to_vector()[0] == 42);
    Tensor c = a.clone();
    CHECK_FALSE(c.same_storage(a));
    c.data<double>()[1] = -1;
    CHECK(a.to_vector()[1] == 1);
  }

  TEST_CASE("rows() is a window along the first dimension") {
    Tensor a = Tensor::from(std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7}, Shape{4, 2}, DType::f64);
    Tensor r = a.rows(1, 3);
    CHECK(r.shape() == Shape{2, 2});
    CHECK(r.to_vector() == std::vector<double>{2, 3, 4, 5});
    CHECK(a.rows(4, 4).numel() == 0);
    CHECK_THROWS_WITH_AS(a.rows(2, 5), doctest::Contains("out of range"), Error);
  }

  TEST_CASE("shapes: rank limit, negative index, printing") {
    CHECK_THROWS_WITH_AS((Shape{1, 2, 3, 4, 5}), doctest::Contains("at most 4"), Error);
    Shape s{2, 3, 5};
    CHECK(s[-1] == 5);
    CHECK(s.str() == "[2, 3, 5]");
    CHECK_THROWS_AS(s[3], Error);
    CHECK(Tensor::zeros(Shape{2, 3}).describe() == "f32[2, 3] on cpu");
  }

  TEST_CASE("typed access checks dtype; undefined tensors say so") {
    Tensor a = Tensor::zeros(Shape{2}, DType::f32);
    CHECK_THROWS_WITH_AS(a.data<double>(), doctest::Contains("data<f64>() on a f32[2]"), Error);
    Tensor u;
    CHECK_FALSE(u.defined());
    CHECK_THROWS_WITH_AS(u.shape(), doctest::Contains("undefined tensor"), Error);
    CHECK_THROWS_WITH_AS(Tensor::from(std::vector<double>{1, 2}, Shape{3}), doctest::Contains("2 values"), Error);
  }

  TEST_CASE("the cuda device is either present or refused with the reason") {
    if (!kernels::cuda_available()) {
      CHECK_THROWS_WITH_AS(Tensor::zeros(Shape{2}, DType::f32, Device::cuda), doctest::Contains("cuda device is not available"),
                           Error);
    } else {
      Tensor t = Tensor::full(Shape{3}, 1.5, DType::f32, Device::cuda);
      CHECK(t.to_vector() == std::vector<double>{1.5, 1.5, 1.5});
    }
  }
}

// A captured graph replays on the addresses it recorded, so the caching allocator must never hand
// a block the graph may touch to other code while the graph lives. The pool logic is the same on
// every device; the cpu's cache shows it here.
TEST_SUITE("allocator") {
  TEST_CASE("a graph's pool keeps its blocks, and those released during capture, from the shared cache") {
    const Device cpu = Device::cpu;
    release_cached_memory(cpu);
    const std::size_t bytes = 4096;
    void* before = allocate(cpu, bytes);  // in use before the capture, released during it
    GraphPool* pool = begin_graph_pool_capture(cpu);
    void* a = allocate(cpu, bytes);
    void* b = allocate(cpu, bytes);
    release(cpu, a, bytes);
    CHECK(allocate(cpu, bytes) == a);  // the pool reuses its own blocks during capture
    release(cpu, before, bytes);
    // Another thread is not capturing: its allocations stay out of the pool.
    std::thread([&] {
      void* other = allocate(cpu, bytes);
      CHECK(other != a);
      CHECK(other != before);
      release(cpu, other, bytes);
    }).join();
    CHECK(cached_bytes(cpu) == bytes);  // the other thread's block, in the shared cache
    end_graph_pool_capture(cpu);
    CHECK(graph_pool_bytes(cpu, pool) == 3 * bytes);  // a, b and the adopted block
    release(cpu, a, bytes);
    release(cpu, b, bytes);
    CHECK(cached_bytes(cpu) == bytes);  // released after capture: back to the pool, not the cache
    for (int i = 0; i < 4; ++i) {       // nothing after the capture is handed a pool block
      void* p = allocate(cpu, bytes);
      CHECK(p != a);
      CHECK(p != b);
      CHECK(p != before);
      release(cpu, p, bytes);
    }
    release_graph_pool(cpu, pool);  // the graph is gone: its blocks are ordinary cached memory
    CHECK(cached_bytes(cpu) == 4 * bytes);
    release_cached_memory(cpu);
  }

  // tests/main.cpp turns the poisoning on for every test; this case turns it off and on again.
  TEST_CASE("with poisoning on, a block comes back as NaN bytes, not as its last user left it") {
    const Device cpu = Device::cpu;
    const std::size_t bytes = 1000;  // rounded up to a whole number of granules: all of it poisoned
    for (bool on : {false, true}) {
      CAPTURE(on);
      set_allocation_poisoning(on);
      release_cached_memory(cpu);
      auto* a = static_cast<float*>(allocate(cpu, bytes));
      for (std::size_t i = 0; i < bytes / sizeof(float); ++i) a[i] = 2.5f;
      release(cpu, a, bytes);
      auto* again = static_cast<float*>(allocate(cpu, bytes));
      REQUIRE(again == a);  // the cached block
      bool stale = true, nan = true;
      for (std::size_t i = 0; i < bytes / sizeof(float); ++i) {
        stale = stale && again[i] == 2.5f;
        nan = nan && std::isnan(again[i]);
      }
      CHECK(nan == on);
      CHECK(stale == !on);
      if (on) {  // as f64 too, and −1 as i32
        CHECK(std::isnan(static_cast<double*>(static_cast<void*>(again))[0]));
        CHECK(static_cast<std::int32_t*>(static_cast<void*>(again))[0] == -1);
      }
      release(cpu, again, bytes);
    }
    // A fresh block too.
    release_cached_memory(cpu);
    auto* fresh = static_cast<double*>(allocate(cpu, 4096));
    CHECK(std::isnan(fresh[511]));
    release(cpu, fresh, 4096);
    release_cached_memory(cpu);
  }

  TEST_CASE("the cpu cannot capture a step: it says why, and the step's host code does not run") {
    int ran = 0;
    std::string why_not;
    CHECK(StepGraph::capture(Device::cpu, [&] { ++ran; }, why_not) == nullptr);
    CHECK(ran == 0);
    CHECK(why_not.find("cpu") != std::string::npos);
    CHECK_THROWS_WITH_AS(
        [] {
          GraphPool* p = begin_graph_pool_capture(Device::cpu);
          struct End {
            GraphPool* p;
            ~End() { release_graph_pool(Device::cpu, p); }
          } end{p};
          begin_graph_pool_capture(Device::cpu);
        }(),
        doctest::Contains("captures do not nest"), Error);
  }
}
