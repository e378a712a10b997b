#pragma once
// IDX files (the MNIST family's format: LeCun et al.), plain or gzip-compressed. The header is
// 0x00 0x00, a type byte (0x08 = unsigned byte, the only type these datasets use), a rank byte,
// then one big-endian u32 per dimension; the data follow, row-major.
#include <cstdint>
#include <filesystem>
#include <vector>

namespace gs::data {

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;
};

// Reads the whole file; any defect (bad magic, unsupported type, a size that disagrees with
// the file's length, a truncated or corrupt gzip stream) raises gs::Error naming the file.
IdxArray read_idx(const std::filesystem::path& path);

// Parses an in-memory IDX image (what read_idx does after decompression); `origin` names it in errors.
IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& origin);

// Writes an uncompressed IDX file of unsigned bytes (tests and tools make small datasets with it).
void write_idx(const std::filesystem::path& path, const IdxArray& array);

}  // namespace gs::data
