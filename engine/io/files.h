#pragma once
// Whole-file reads and atomic writes: a file is written to a temporary name beside it and renamed
// over the target, so a reader (or a crash) never sees half a checkpoint or half a summary.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace gs::io {

std::vector<std::uint8_t> read_file(const std::filesystem::path& path);
void write_file_atomically(const std::filesystem::path& path, const void* data, std::size_t bytes);
void write_file_atomically(const std::filesystem::path& path, const std::string& text);
// std::filesystem::create_directories, failing with an Error that names the directory, the
// reason and `fix` (what the user can do about it) instead of a filesystem_error.
void make_directories(const std::filesystem::path& dir, std::string_view fix);

}  // namespace gs::io
