#include "engine/io/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "engine/error.h"

namespace gs::io {

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  // Linux opens a directory as a file, and its "size" can be near 2^63: refuse it by name.
  std::error_code ec;
  GS_CHECK(!std::filesystem::is_directory(path, ec), "{}: is a directory; give the path of a file in it",
           path.string());
  std::ifstream in(path, std::ios::binary);
  GS_CHECK(in.good(), "{}: cannot open for reading ({})", path.string(), std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  GS_CHECK(end >= 0, "{}: cannot tell its size (not a regular file?)", path.string());
  const auto size = static_cast<std::size_t>(end);
  in.seekg(0);
  std::vector<std::uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  GS_CHECK(in.good() || size == 0, "{}: read failed after {} of {} bytes", path.string(), in.gcount(), size);
  return bytes;
}

void write_file_atomically(const std::filesystem::path& path, const void* data, std::size_t bytes) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    GS_CHECK(f != nullptr, "{}: cannot open for writing ({})", tmp.string(), std::strerror(errno));
    const std::size_t written = bytes ? std::fwrite(data, 1, bytes, f) : 0;
    const bool flushed = std::fflush(f) == 0;
    const bool closed = std::fclose(f) == 0;
    if (written != bytes || !flushed || !closed) {
      std::filesystem::remove(tmp);
      fail("{}: write failed after {} of {} bytes (disk full?)", path.string(), written, bytes);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  GS_CHECK(!ec, "{}: cannot rename the finished temporary file into place ({})", path.string(), ec.message());
}

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

void make_directories(const std::filesystem::path& dir, std::string_view fix) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  GS_CHECK(!ec, "{}: cannot create this directory ({}); {}", dir.string(), ec.message(), fix);
}

FileLock::FileLock(const std::filesystem::path& path, std::string_view fix) {
  // O_CLOEXEC: a child (git, the figure script) must not keep the lock past this process.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  GS_CHECK(fd_ >= 0, "{}: cannot open this lock file ({}); {}", path.string(), std::strerror(errno), fix);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    GS_CHECK(error == EWOULDBLOCK, "{}: cannot lock ({}); {}", path.string(), std::strerror(error), fix);
    fail("{}: another process{} is using this directory; {}", path.string(),
         n > 0 ? fmt::format(" (pid {})", std::string(pid, static_cast<std::size_t>(n))) : std::string(), fix);
  }
  const std::string me = std::to_string(::getpid());
  const bool noted = ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, me.data(), me.size(), 0) == static_cast<ssize_t>(me.size());
  (void)noted;  // the pid is for the message above only: the lock holds without it
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace gs::io
