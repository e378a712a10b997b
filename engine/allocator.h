#pragma once
// A caching allocator per device: freed blocks are kept by size and handed out again, so that the
// training loop's fixed set of shapes stops calling malloc (or cudaMalloc) after the first step.
// When the system refuses a new block, the cached ones go back to it and the request is made once
// more (except while a graph is captured).
#include <cstddef>

#include "engine/dtype.h"

namespace gs {

void* allocate(Device device, std::size_t bytes);
// For tests: while on, every block allocate() hands out, fresh or cached, is first filled with
// ones (NaN as f32 or f64, −1 as i32), so that an op or kernel that leaves part of its output
// unwritten gives NaN instead of the stale values of the block's last use, which are often close
// to the right ones in a training loop. Blocks handed out during a graph capture are left as they
// are (the graph replays on them anyway). Off by default.
void set_allocation_poisoning(bool on);
void release(Device device, void* ptr, std::size_t bytes);
// Hands every cached block back to the system (tests of memory use; before a large probe).
void release_cached_memory(Device device);
std::size_t cached_bytes(Device device);

// The private pool of a captured graph (engine/step_graph.h). A graph replays on the addresses
// it recorded, so no block it may touch can be handed to other code while it lives:
//   - while a pool captures, the capturing thread's allocations on its device come from the
//     pool (then from the cache's free blocks, then the system), and every block that thread
//     releases joins the pool, the pool's own and older ones alike;
//   - after the capture, a pool block that is released goes back to its pool, not the cache;
//   - release_graph_pool, once the graph is gone, hands the pool's blocks to the cache.
struct GraphPool;
GraphPool* begin_graph_pool_capture(Device device);
void end_graph_pool_capture(Device device);
void release_graph_pool(Device device, GraphPool* pool);
// Bytes a pool holds, free or in use (tests).
std::size_t graph_pool_bytes(Device device, const GraphPool* pool);

}  // namespace gs
