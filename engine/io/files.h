#pragma once
// Whole-file reads and atomic writes: a file is written to a temporary name beside it and renamed
// over the target, so a reader (or a crash) never sees half a checkpoint or half a summary.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gs::io {

std::vector<std::uint8_t> read_file(const std::filesystem::path& path);
void write_file_atomically(const std::filesystem::path& path, const void* data, std::size_t bytes);
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace gs::io
