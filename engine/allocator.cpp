#include "engine/allocator.h"

#include <map>
#include <mutex>
#include <vector>

#include "kernels/backend.h"

namespace gs {

namespace {

// Blocks are rounded up to a multiple of 256 bytes so that nearby sizes share a bucket.
constexpr std::size_t granule = 256;
// Past this many cached bytes a freed block goes straight back to the system.
constexpr std::size_t cache_limit = std::size_t(2) << 30;

std::size_t round_up(std::size_t bytes) { return (bytes + granule - 1) / granule * granule; }

struct Cache {
  std::mutex mutex;
  std::multimap<std::size_t, void*> free_blocks;
  std::size_t bytes = 0;
  bool host = false;
  ~Cache() {
    // Host blocks go back at exit; device blocks go with the CUDA context, which may already be gone.
    if (host)
      for (auto& [size, ptr] : free_blocks) kernels::cpu_backend().release(ptr);
  }
};

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
  {
    std::lock_guard lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end()) {
      void* p = it->second;
      c.free_blocks.erase(it);
      c.bytes -= size;
      return p;
    }
  }
  return kernels::backend(device).allocate(size);
}

void release(Device device, void* ptr, std::size_t bytes) {
  if (!ptr) return;
  const std::size_t size = round_up(bytes == 0 ? 1 : bytes);
  Cache& c = cache(device);
  {
    std::lock_guard lock(c.mutex);
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
  for (auto& [size, ptr] : c.free_blocks) kernels::backend(device).release(ptr);
  c.free_blocks.clear();
  c.bytes = 0;
}

std::size_t cached_bytes(Device device) {
  Cache& c = cache(device);
  std::lock_guard lock(c.mutex);
  return c.bytes;
}

}  // namespace gs
