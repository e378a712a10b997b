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

// An exclusive lock on `path` (flock; the file is created and holds the owner's pid) for as long
// as the object lives, released by the kernel if the process dies. Two processes writing one run
// directory would interleave its logs and checkpoints: the second fails with an Error that names
// the path, the holder's pid and `fix`.
class FileLock {
 public:
  FileLock(const std::filesystem::path& path, std::string_view fix);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace gs::io
