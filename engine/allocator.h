#pragma once
// A caching allocator per device: freed blocks are kept by size and handed out again, so that the
// training loop's fixed set of shapes stops calling malloc (or cudaMalloc) after the first step.
#include <cstddef>

#include "engine/dtype.h"

namespace gs {

void* allocate(Device device, std::size_t bytes);
void release(Device device, void* ptr, std::size_t bytes);
// Hands every cached block back to the system (tests of memory use; before a large probe).
void release_cached_memory(Device device);
std::size_t cached_bytes(Device device);

}  // namespace gs
