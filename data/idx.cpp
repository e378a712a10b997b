#include "data/idx.h"

#include <zlib.h>

#include <fstream>

#include "engine/error.h"

namespace gs::data {

namespace {

// Reads a file, inflating it when it starts with the gzip magic (zlib passes plain files through).
std::vector<std::uint8_t> read_maybe_gzip(const std::filesystem::path& path) {
  GS_CHECK(std::filesystem::exists(path), "{}: no such file; fetch the dataset first (see data/fetch.sh)", path.string());
  gzFile f = gzopen(path.c_str(), "rb");
  GS_CHECK(f != nullptr, "{}: cannot open for reading", path.string());
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> chunk(1 << 20);
  for (;;) {
    const int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      std::string message = gzerror(f, &code);
      gzclose(f);
      fail("{}: corrupt gzip data ({}); delete the file and fetch it again", path.string(), message);
    }
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  const int status = gzclose(f);
  GS_CHECK(status == Z_OK, "{}: truncated or corrupt gzip stream (zlib status {}); fetch it again", path.string(), status);
  return out;
}

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

}  // namespace

IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& origin) {
  GS_CHECK(bytes.size() >= 4, "{}: {} bytes is too short for an IDX header (4 bytes of magic)", origin, bytes.size());
  GS_CHECK(bytes[0] == 0 && bytes[1] == 0,
           "{}: not an IDX file (magic starts 0x{:02x} 0x{:02x}, expected 0x00 0x00)", origin, bytes[0], bytes[1]);
  GS_CHECK(bytes[2] == 0x08, "{}: IDX element type 0x{:02x} is not supported; only unsigned bytes (0x08)", origin, bytes[2]);
  const int rank = bytes[3];
  GS_CHECK(rank >= 1 && rank <= 4, "{}: IDX rank {} is not supported (1 to 4)", origin, rank);
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  GS_CHECK(bytes.size() >= header, "{}: truncated IDX header: {} bytes, the header needs {}", origin, bytes.size(), header);
  IdxArray a;
  std::uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const std::uint32_t d = big_endian_u32(bytes.data() + 4 + 4 * i);
    a.dims.push_back(d);
    count *= d;
    GS_CHECK(count <= (std::uint64_t(1) << 40), "{}: IDX dimensions are implausibly large", origin);
  }
  const std::uint64_t available = bytes.size() - header;
  GS_CHECK(available == count,
           "{}: the header promises {} values but the file holds {} bytes of data ({}); the file is {}", origin, count,
           available, available < count ? "a short read" : "trailing garbage", available < count ? "truncated" : "corrupt");
  a.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

IdxArray read_idx(const std::filesystem::path& path) { return parse_idx(read_maybe_gzip(path), path.string()); }

void write_idx(const std::filesystem::path& path, const IdxArray& a) {
  GS_CHECK(!a.dims.empty() && a.dims.size() <= 4, "write_idx: rank {} is not 1 to 4", a.dims.size());
  std::ofstream out(path, std::ios::binary);
  GS_CHECK(out.good(), "{}: cannot open for writing", path.string());
  const std::uint8_t magic[4] = {0, 0, 0x08, static_cast<std::uint8_t>(a.dims.size())};
  out.write(reinterpret_cast<const char*>(magic), 4);
  for (auto d : a.dims) {
    const std::uint8_t be[4] = {std::uint8_t(d >> 24), std::uint8_t(d >> 16), std::uint8_t(d >> 8), std::uint8_t(d)};
    out.write(reinterpret_cast<const char*>(be), 4);
  }
  out.write(reinterpret_cast<const char*>(a.values.data()), static_cast<std::streamsize>(a.values.size()));
  GS_CHECK(out.good(), "{}: write failed", path.string());
}

}  // namespace gs::data
