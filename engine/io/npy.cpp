#include "engine/io/npy.h"

#include <fmt/format.h>

#include <cstring>
#include <regex>

#include "engine/io/files.h"

namespace gs::io {

namespace {
const char* descr(DType d) {
  switch (d) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
  }
  return "?";
}
}  // namespace

void save_npy(const std::filesystem::path& path, const Tensor& t) {
  Tensor h = t.device() == Device::cpu ? t : t.to(Device::cpu);
  std::string shape;  // Python tuple syntax: (), (3,), (3, 4)
  for (int i = 0; i < h.rank(); ++i) shape += (i ? ", " : "") + std::to_string(h.size(i));
  if (h.rank() == 1) shape += ",";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr(h.dtype()), shape);
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  const std::size_t bytes = static_cast<std::size_t>(h.numel()) * dtype_size(h.dtype());
  const std::size_t at = out.size();
  out.resize(at + bytes);
  if (bytes) std::memcpy(out.data() + at, h.raw(), bytes);
  write_file_atomically(path, out);
}

Tensor load_npy(const std::filesystem::path& path) {
  const auto bytes = read_file(path);
  const std::string origin = path.string();
  GS_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, "{}: not a .npy file (bad magic)", origin);
  GS_CHECK(bytes[6] == 1 || bytes[6] == 2 || bytes[6] == 3, "{}: .npy format version {} is not supported", origin, int(bytes[6]));
  const bool long_header = bytes[6] >= 2;
  const std::size_t prefix = long_header ? 12 : 10;
  GS_CHECK(bytes.size() >= prefix, "{}: truncated .npy header", origin);
  std::size_t header_len = bytes[8] | (std::size_t(bytes[9]) << 8);
  if (long_header) header_len |= (std::size_t(bytes[10]) << 16) | (std::size_t(bytes[11]) << 24);
  GS_CHECK(bytes.size() >= prefix + header_len, "{}: truncated .npy header", origin);
  const std::string header(bytes.begin() + static_cast<std::ptrdiff_t>(prefix),
                           bytes.begin() + static_cast<std::ptrdiff_t>(prefix + header_len));
  std::smatch m;
  GS_CHECK(std::regex_search(header, m, std::regex(R"('descr':\s*'([^']*)')")), "{}: no 'descr' in the .npy header", origin);
  const std::string d = m[1];
  DType dtype = DType::f32;
  if (d == "<f4")
    dtype = DType::f32;
  else if (d == "<f8")
    dtype = DType::f64;
  else if (d == "<i4")
    dtype = DType::i32;
  else
    fail("{}: dtype '{}' is not supported; save float32 ('<f4'), float64 ('<f8') or int32 ('<i4')", origin, d);
  GS_CHECK(std::regex_search(header, m, std::regex(R"('fortran_order':\s*(True|False))")) && m[1] == "False",
           "{}: Fortran-order arrays are not supported; save with numpy.ascontiguousarray", origin);
  GS_CHECK(std::regex_search(header, m, std::regex(R"('shape':\s*\(([^)]*)\))")), "{}: no 'shape' in the .npy header", origin);
  std::vector<std::int64_t> dims;
  const std::string dims_text = m[1];
  const std::regex number(R"(\d+)");
  for (std::sregex_iterator it(dims_text.begin(), dims_text.end(), number), end; it != end; ++it)
    dims.push_back(std::stoll(it->str()));
  GS_CHECK(dims.size() <= 4, "{}: rank {} arrays are not supported (at most 4)", origin, dims.size());
  Shape shape = Shape::of(dims.data(), static_cast<int>(dims.size()));
  const std::size_t need = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  GS_CHECK(bytes.size() - prefix - header_len == need, "{}: the header promises {} data bytes but the file holds {}", origin,
           need, bytes.size() - prefix - header_len);
  Tensor t = Tensor::empty(shape, dtype);
  if (need) std::memcpy(t.raw(), bytes.data() + prefix + header_len, need);
  return t;
}

}  // namespace gs::io
