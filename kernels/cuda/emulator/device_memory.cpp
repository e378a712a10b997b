#include "kernels/cuda/emulator/device_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

#if defined(GS_EMULATOR_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace gs::cuda_emulator {

namespace {

// "[never]" in the kernel's setting; where it cannot be read, madvise's answer stands alone.
bool huge_pages_disabled() {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) return false;
  char line[128] = {};
  const bool read = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  return read && std::strstr(line, "[never]") != nullptr;
}

}  // namespace

DeviceMemory::DeviceMemory() {
  void* p = mmap(nullptr, reserved + huge_page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return;
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  base_ = static_cast<char*>(p) + ((huge_page - at % huge_page) % huge_page);
  if (madvise(base_, reserved, MADV_HUGEPAGE) != 0 || huge_pages_disabled())
    std::fprintf(stderr,
                 "cuda emulator: no transparent huge pages (/sys/kernel/mm/transparent_hugepage/enabled), so "
                 "every launch protects device memory page by page: the emulated suites run about 20 times slower\n");
}

void* DeviceMemory::allocate(std::size_t bytes) {
  if (!base_) return nullptr;
  const std::size_t size = ((bytes == 0 ? 1 : bytes) + redzone + alignment - 1) / alignment * alignment;
  if (limit_ && in_use_ + size > limit_) return nullptr;
  std::size_t offset = top_;
  auto hole = free_.begin();
  while (hole != free_.end() && hole->second < size) ++hole;
  if (hole != free_.end()) {
    offset = hole->first;
    if (hole->second > size) free_.emplace(offset + size, hole->second - size);
    free_.erase(hole);
  } else {
    if (top_ + size > reserved) return nullptr;
    top_ += size;
  }
  live_.emplace(offset, Live{size, bytes});
  in_use_ += size;
  // Fresh device memory holds garbage; all-ones bytes are NaN in f32 and f64 and -1 in i32,
  // so a kernel that reads before it writes gives itself away.
  Open open(*this);
#if defined(GS_EMULATOR_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(base_ + offset, size);
  std::memset(base_ + offset, 0xff, size);
  ASAN_POISON_MEMORY_REGION(base_ + offset + (bytes == 0 ? 1 : bytes), size - (bytes == 0 ? 1 : bytes));
#else
  std::memset(base_ + offset, 0xff, size);
#endif
  return base_ + offset;
}

bool DeviceMemory::release(void* ptr) {
  if (!contains(ptr)) return false;
  auto it = live_.find(static_cast<std::size_t>(static_cast<char*>(ptr) - base_));
  if (it == live_.end()) return false;
  std::size_t offset = it->first, size = it->second.size;
  live_.erase(it);
  in_use_ -= size;
#if defined(GS_EMULATOR_ASAN)
  ASAN_POISON_MEMORY_REGION(base_ + offset, size);  // a kernel that uses it after cudaFree is reported
#endif
  // Coalesce with the free neighbours; the hole at the top shrinks the used range instead.
  auto next = free_.find(offset + size);
  if (next != free_.end()) {
    size += next->second;
    free_.erase(next);
  }
  auto prev = free_.lower_bound(offset);
  if (prev != free_.begin() && (--prev, prev->first + prev->second == offset)) {
    offset = prev->first;
    size += prev->second;
    free_.erase(prev);
  }
  if (offset + size == top_)
    top_ = offset;
  else
    free_.emplace(offset, size);
  return true;
}

bool DeviceMemory::holds(const void* ptr, std::size_t bytes) const {
  if (!contains(ptr)) return false;
  const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(ptr) - base_);
  auto it = live_.upper_bound(at);
  if (it == live_.begin()) return false;
  --it;
  return at + bytes <= it->first + it->second.requested && at < it->first + it->second.requested;
}

void DeviceMemory::protect(bool accessible) {
  // The whole used range, including holes: one call, whatever the number of allocations.
  const std::size_t extent = (std::max(top_, protected_extent_) + huge_page - 1) / huge_page * huge_page;
  if (extent) mprotect(base_, extent, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
  protected_extent_ = accessible ? extent : 0;
}

DeviceMemory& memory() {
  static DeviceMemory m;
  return m;
}

}  // namespace gs::cuda_emulator
