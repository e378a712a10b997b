#include "engine/io/npy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

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
  return parse_npy(bytes.data(), bytes.size(), path.string());
}

namespace {
// The sizes in a shape tuple's text ("3, 4", "3,", ""): each a whole number, their product below
// 2^40 elements, so that nothing downstream overflows.
std::vector<std::int64_t> shape_sizes(const std::string& text, const std::string& origin) {
  std::vector<std::int64_t> dims;
  std::uint64_t count = 1;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    std::size_t b = at, e = comma;
    while (b < e && text[b] == ' ') ++b;
    while (e > b && text[e - 1] == ' ') --e;
    if (b < e) {
      std::uint64_t d = 0;
      const auto parsed = std::from_chars(text.data() + b, text.data() + e, d);
      GS_CHECK(parsed.ec != std::errc::invalid_argument && parsed.ptr == text.data() + e,
               "{}: the .npy shape ({}) is not a tuple of array sizes", origin, text);
      GS_CHECK(parsed.ec == std::errc() && d < (std::uint64_t(1) << 40), "{}: the .npy shape ({}) is implausibly large",
               origin, text);
      // Checked before multiplying: a product that wrapped around 2^64 would pass afterwards.
      GS_CHECK(d == 0 || count < (std::uint64_t(1) << 40) / d, "{}: the .npy shape ({}) is implausibly large", origin, text);
      count *= d;
      dims.push_back(static_cast<std::int64_t>(d));
    } else {
      GS_CHECK(comma == text.size(), "{}: the .npy shape ({}) is not a tuple of array sizes", origin, text);
    }
    at = comma + 1;
  }
  return dims;
}

// What follows "'key':" and spaces in the header's dict literal, or nothing. A plain scan:
// std::regex recurses once per character and overflowed the stack on headers of 100 kB.
std::optional<std::string_view> value_of(std::string_view header, std::string_view key) {
  std::string quoted(1, '\'');  // built piece by piece: GCC 12 misreads operator+ here (-Wrestrict)
  quoted.append(key).append("':");
  const std::size_t at = header.find(quoted);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = header.substr(at + quoted.size());
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
  return rest;
}

// The value's text between `open` and `close` ('<f4' → <f4; (3, 4) → 3, 4), or nothing.
std::optional<std::string_view> delimited_value(std::string_view header, std::string_view key, char open, char close) {
  const auto rest = value_of(header, key);
  if (!rest || rest->empty() || rest->front() != open) return std::nullopt;
  const std::size_t end = rest->find(close, 1);
  if (end == std::string_view::npos) return std::nullopt;
  return rest->substr(1, end - 1);
}

// The value's first word (True, False), or nothing.
std::optional<std::string_view> word_value(std::string_view header, std::string_view key) {
  const auto rest = value_of(header, key);
  if (!rest) return std::nullopt;
  std::size_t len = 0;
  while (len < rest->size() && std::isalpha(static_cast<unsigned char>((*rest)[len]))) ++len;
  return rest->substr(0, len);
}
}  // namespace

Tensor parse_npy(const std::uint8_t* bytes, std::size_t size, const std::string& origin) {
  GS_CHECK(size >= 10 && std::memcmp(bytes, "\x93NUMPY", 6) == 0, "{}: not a .npy file (bad magic)", origin);
  GS_CHECK(bytes[6] == 1 || bytes[6] == 2 || bytes[6] == 3, "{}: .npy format version {} is not supported", origin, int(bytes[6]));
  const bool long_header = bytes[6] >= 2;
  const std::size_t prefix = long_header ? 12 : 10;
  GS_CHECK(size >= prefix, "{}: truncated .npy header", origin);
  std::size_t header_len = bytes[8] | (std::size_t(bytes[9]) << 8);
  if (long_header) header_len |= (std::size_t(bytes[10]) << 16) | (std::size_t(bytes[11]) << 24);
  GS_CHECK(size >= prefix + header_len, "{}: truncated .npy header", origin);
  // numpy.load refuses longer headers too (max_header_size); every array grokscope reads has one
  // of about 128 bytes.
  GS_CHECK(header_len <= 10000,
           "{}: its .npy header is {} bytes long (numpy.load refuses such too); save a plain float32, float64 or int32 "
           "array with numpy.save",
           origin, header_len);
  const std::string_view header(reinterpret_cast<const char*>(bytes) + prefix, header_len);
  const auto descr = delimited_value(header, "descr", '\'', '\'');
  GS_CHECK(descr.has_value(), "{}: no 'descr' in the .npy header", origin);
  const std::string d(*descr);
  DType dtype = DType::f32;
  if (d == "<f4")
    dtype = DType::f32;
  else if (d == "<f8")
    dtype = DType::f64;
  else if (d == "<i4")
    dtype = DType::i32;
  else
    fail("{}: dtype '{}' is not supported; save float32 ('<f4'), float64 ('<f8') or int32 ('<i4')", origin,
         d.size() > 40 ? d.substr(0, 40) + "..." : d);
  GS_CHECK(word_value(header, "fortran_order") == "False",
           "{}: Fortran-order arrays are not supported; save with numpy.ascontiguousarray", origin);
  const auto shape_text = delimited_value(header, "shape", '(', ')');
  GS_CHECK(shape_text.has_value(), "{}: no 'shape' in the .npy header", origin);
  const std::vector<std::int64_t> dims = shape_sizes(std::string(*shape_text), origin);
  GS_CHECK(dims.size() <= 4, "{}: rank {} arrays are not supported (at most 4)", origin, dims.size());
  Shape shape = Shape::of(dims.data(), static_cast<int>(dims.size()));
  const std::size_t need = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  GS_CHECK(size - prefix - header_len == need, "{}: the header promises {} data bytes but the file holds {}", origin, need,
           size - prefix - header_len);
  Tensor t = Tensor::empty(shape, dtype);
  if (need) std::memcpy(t.raw(), bytes + prefix + header_len, need);
  return t;
}

}  // namespace gs::io
