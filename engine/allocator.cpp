#include "engine/allocator.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/error.h"
#include "kernels/backend.h"

namespace gs {

namespace {

// Blocks are rounded up to a multiple of 256 bytes so that nearby sizes share a bucket.
constexpr std::size_t granule = 256;
// Past this many cached bytes a freed block goes straight back to the system.
constexpr std::size_t cache_limit = std::size_t(2) << 30;

std::size_t round_up(std::size_t bytes) { return (bytes + granule - 1) / granule * granule; }

std::atomic<bool> poisoning{false};

}  // namespace

struct GraphPool {
  std::multimap<std::size_t, void*> free_blocks;
  std::unordered_map<void*, std::size_t> blocks;  // every block the pool owns, by size
};

namespace {

struct Cache {
  std::mutex mutex;
  std::multimap<std::size_t, void*> free_blocks;
  std::size_t bytes = 0;
  bool host = false;
  std::unordered_map<void*, GraphPool*> pool_of;  // blocks that belong to a graph's pool
  GraphPool* capturing = nullptr;
  std::thread::id capturing_thread;
  bool capturing_here() const { return capturing && capturing_thread == std::this_thread::get_id(); }
  void adopt(GraphPool* pool, void* ptr, std::size_t size) {
    pool_of[ptr] = pool;
    pool->blocks[ptr] = size;
  }
  // A free block for `size` from the shared cache, or null.
  void* take_free(std::size_t size) {
    auto it = free_blocks.find(size);
    if (it == free_blocks.end()) return nullptr;
    void* p = it->second;
    free_blocks.erase(it);
    bytes -= size;
    return p;
  }
  ~Cache() {
    // Host blocks go back at exit; device blocks go with the CUDA context, which may already be gone.
    if (host)
      for (auto& [size, ptr] : free_blocks) kernels::cpu_backend().release(ptr);
  }
};

// Hands the cache's free blocks back to the system; the cache's lock is held. Each leaves the
// cache before it is released, so that a release that throws (a broken device) leaves no block
// listed that is already gone.
void drop_free_blocks(Cache& c, Device device) {
  while (!c.free_blocks.empty()) {
    const auto [size, ptr] = *c.free_blocks.begin();
    c.free_blocks.erase(c.free_blocks.begin());
    c.bytes -= size;
    kernels::backend(device).release(ptr);
  }
}

Cache& cache(Device device);

// A new block from the system. When the system has none left, the cache's free blocks (sizes
// other than this one, or one would have been taken) may be what is in the way: they go back and
// the request is made once more. Not while a graph is captured: freeing would break the capture.
void* system_block(Device device, std::size_t size) {
  try {
    return kernels::backend(device).allocate(size);
  } catch (const Error&) {
    Cache& c = cache(device);
    std::lock_guard lock(c.mutex);
    if (c.free_blocks.empty()) throw;
    drop_free_blocks(c, device);
  }
  return kernels::backend(device).allocate(size);
}

Cache& cache(Device device) {
  // The CPU backend is built first so that it is destroyed after the caches, which hand their
  // host blocks back at exit (leak checkers then see none).
  static kernels::Backend& cpu = kernels::cpu_backend();
  (void)cpu;
  static Cache caches[2];
  caches[0].host = true;
  return caches[static_cast<int>(device)];
}

}  // namespace

void* allocate(Device device, std::size_t bytes) {
  const std::size_t size = round_up(bytes == 0 ? 1 : bytes);
  Cache& c = cache(device);
  void* p = nullptr;
  {
    std::lock_guard lock(c.mutex);
    if (c.capturing_here()) {
      GraphPool* pool = c.capturing;
      auto it = pool->free_blocks.find(size);
      if (it != pool->free_blocks.end()) {
        p = it->second;
        pool->free_blocks.erase(it);
        return p;
      }
      p = c.take_free(size);
      if (!p) p = kernels::backend(device).allocate(size);
      c.adopt(pool, p, size);
      return p;
    }
    p = c.take_free(size);
  }
  if (!p) p = system_block(device, size);
  if (poisoning) kernels::backend(device).poison(p, size);
  return p;
}

void set_allocation_poisoning(bool on) { poisoning = on; }

void release(Device device, void* ptr, std::size_t bytes) {
  if (!ptr) return;
  const std::size_t size = round_up(bytes == 0 ? 1 : bytes);
  Cache& c = cache(device);
  {
    std::lock_guard lock(c.mutex);
    auto owner = c.pool_of.find(ptr);
    if (owner == c.pool_of.end() && c.capturing_here()) {
      // Released during capture: the graph may have read it earlier, so it stays the graph's.
      c.adopt(c.capturing, ptr, size);
      owner = c.pool_of.find(ptr);
    }
    if (owner != c.pool_of.end()) {
      owner->second->free_blocks.emplace(size, ptr);
      return;
    }
    if (c.bytes + size <= cache_limit) {
      c.free_blocks.emplace(size, ptr);
      c.bytes += size;
      return;
    }
  }
  kernels::backend(device).release(ptr);
}

void release_cached_memory(Device device) {
  Cache& c = cache(device);
  std::lock_guard lock(c.mutex);
  drop_free_blocks(c, device);
}

GraphPool* begin_graph_pool_capture(Device device) {
  Cache& c = cache(device);
  std::lock_guard lock(c.mutex);
  GS_CHECK(!c.capturing, "a graph is already being captured on the {} device; captures do not nest", device_name(device));
  c.capturing = new GraphPool;
  c.capturing_thread = std::this_thread::get_id();
  return c.capturing;
}

void end_graph_pool_capture(Device device) {
  Cache& c = cache(device);
  std::lock_guard lock(c.mutex);
  c.capturing = nullptr;
}

void release_graph_pool(Device device, GraphPool* pool) {
  if (!pool) return;
  Cache& c = cache(device);
  {
    std::lock_guard lock(c.mutex);
    if (c.capturing == pool) c.capturing = nullptr;
    // Blocks still in use become ordinary: released later, they go to the cache.
    for (auto& [ptr, size] : pool->blocks) c.pool_of.erase(ptr);
  }
  for (auto& [size, ptr] : pool->free_blocks) release(device, ptr, size);
  delete pool;
}

std::size_t graph_pool_bytes(Device device, const GraphPool* pool) {
  Cache& c = cache(device);
  std::lock_guard lock(c.mutex);
  std::size_t total = 0;
  for (auto& [ptr, size] : pool->blocks) total += size;
  return total;
}

std::size_t cached_bytes(Device device) {
  Cache& c = cache(device);
  std::lock_guard lock(c.mutex);
  return c.bytes;
}

}  // namespace gs
