#pragma once
// The emulated device's memory: one reserved range of address space, allocations carved from
// it, and the part in use readable only while a kernel or a copy runs, so that host code that
// dereferences a device pointer crashes as it would on a GPU.
#include <cstddef>
#include <map>

#if defined(__SANITIZE_ADDRESS__)
#define GS_EMULATOR_ASAN 1
#endif

namespace gs::cuda_emulator {

class DeviceMemory {
 public:
  static constexpr std::size_t reserved = std::size_t(64) << 30;  // address space, not memory
  static constexpr std::size_t alignment = 256;                   // cudaMalloc's guarantee
  // Every launch opens and closes the used range (one mprotect each), at a cost that grows with
  // the page-table entries remapped: backed by 2 MiB transparent huge pages it is 512 times fewer
  // (the release gpu suite took 19 s with them, 370 s without, on a 2-core machine).
  static constexpr std::size_t huge_page = std::size_t(2) << 20;
#if defined(GS_EMULATOR_ASAN)
  // Unaddressable bytes after every allocation, so that ASan reports a kernel running past it.
  static constexpr std::size_t redzone = 256;
#else
  static constexpr std::size_t redzone = 0;
#endif

  DeviceMemory();

  // Fresh memory of at least `bytes`, filled with NaN bytes; null when the range or the limit is
  // exhausted.
  void* allocate(std::size_t bytes);
  // False for a pointer allocate() did not return (or returned and took back already).
  bool release(void* ptr);
  // The live allocation holding [ptr, ptr + bytes), if one does.
  bool holds(const void* ptr, std::size_t bytes) const;
  bool contains(const void* ptr) const {
    const char* p = static_cast<const char*>(ptr);
    return base_ && p >= base_ && p < base_ + reserved;
  }

  std::size_t in_use() const { return in_use_; }
  void set_limit(std::size_t bytes) { limit_ = bytes; }

  // Device memory is accessible while one of these lives.
  class Open {
   public:
    explicit Open(DeviceMemory& m) : m_(m) {
      if (m_.open_++ == 0) m_.protect(true);
    }
    ~Open() {
      if (--m_.open_ == 0) m_.protect(false);
    }
    Open(const Open&) = delete;
    Open& operator=(const Open&) = delete;

   private:
    DeviceMemory& m_;
  };

 private:
  void protect(bool accessible);

  char* base_ = nullptr;
  std::size_t top_ = 0, protected_extent_ = 0;
  std::size_t in_use_ = 0, limit_ = 0;  // carved bytes of the live allocations; 0: no limit
  int open_ = 0;
  struct Live {
    std::size_t size, requested;  // the carved size, and the bytes cudaMalloc was asked for
  };
  std::map<std::size_t, Live> live_;          // by offset
  std::map<std::size_t, std::size_t> free_;  // offset -> size
};

// The one device's memory, reserved at first use.
DeviceMemory& memory();

}  // namespace gs::cuda_emulator
