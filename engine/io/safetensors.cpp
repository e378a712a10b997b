#include "engine/io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "engine/io/files.h"

namespace gs::io {

namespace {

const char* dtype_tag(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
  }
  return "?";
}

DType dtype_from_tag(const std::string& tag, const std::string& origin, const std::string& name) {
  if (tag == "F32") return DType::f32;
  if (tag == "F64") return DType::f64;
  if (tag == "I32") return DType::i32;
  fail("{}: tensor '{}' has dtype {}; grokscope reads F32, F64 and I32", origin, name, tag);
}

constexpr std::uint64_t max_header = 100u << 20;  // the format's own limit

}  // namespace

Tensor Safetensors::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  fail("checkpoint has no tensor '{}'", name);
}

void save_safetensors(const std::filesystem::path& path, const nn::NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  std::vector<Tensor> host;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    GS_CHECK(name != "__metadata__" && !header.contains(name), "save_safetensors: duplicate or reserved name '{}'", name);
    Tensor h = t.device() == Device::cpu ? t : t.to(Device::cpu);
    const std::uint64_t bytes = static_cast<std::uint64_t>(h.numel()) * dtype_size(h.dtype());
    header[name] = {{"dtype", dtype_tag(h.dtype())},
                    {"shape", std::vector<std::int64_t>(h.shape().begin(), h.shape().end())},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    host.push_back(h);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data start 8-byte aligned
  std::vector<std::uint8_t> out(8 + text.size() + offset);
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::uint8_t* data = out.data() + 8 + text.size();
  for (const auto& h : host) {
    const std::size_t bytes = static_cast<std::size_t>(h.numel()) * dtype_size(h.dtype());
    if (bytes) std::memcpy(data, h.raw(), bytes);
    data += bytes;
  }
  write_file_atomically(path, out.data(), out.size());
}

Safetensors parse_safetensors(const std::uint8_t* bytes, std::size_t size, const std::string& origin) {
  GS_CHECK(size >= 8, "{}: {} bytes is too short for a safetensors file (8-byte header length)", origin, size);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(bytes[i]) << (8 * i);
  GS_CHECK(n <= max_header && n <= size - 8, "{}: header length {} exceeds the file ({} bytes) or the 100 MiB limit; the file is "
           "truncated or not safetensors", origin, n, size);
  nlohmann::ordered_json header;  // keeps the tensors in file order
  try {
    header = nlohmann::ordered_json::parse(bytes + 8, bytes + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the header is not valid JSON ({})", origin, e.what());
  }
  GS_CHECK(header.is_object(), "{}: the header must be a JSON object", origin);
  const std::uint8_t* data = bytes + 8 + n;
  const std::uint64_t data_size = size - 8 - n;
  Safetensors out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      if (name == "__metadata__") {
        GS_CHECK(it->is_object(), "{}: __metadata__ must be an object of strings", origin);
        for (auto m = it->begin(); m != it->end(); ++m) {
          GS_CHECK(m->is_string(), "{}: __metadata__ value of '{}' is not a string", origin, m.key());
          out.metadata[m.key()] = m->get<std::string>();
        }
        continue;
      }
      const auto& e = *it;
      GS_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
               "{}: tensor '{}' needs dtype, shape and data_offsets", origin, name);
      const DType dtype = dtype_from_tag(e.at("dtype").get<std::string>(), origin, name);
      const auto dims = e.at("shape").get<std::vector<std::int64_t>>();
      GS_CHECK(dims.size() <= Shape::max_rank, "{}: tensor '{}' has rank {}; grokscope tensors have at most {}", origin,
               name, dims.size(), Shape::max_rank);
      std::uint64_t count = 1;
      for (auto d : dims) {
        GS_CHECK(d >= 0 && d < (std::int64_t(1) << 40), "{}: tensor '{}' has an impossible dimension {}", origin, name, d);
        // Checked before multiplying: a product that wrapped around 2^64 would pass afterwards.
        GS_CHECK(d == 0 || count < (std::uint64_t(1) << 40) / static_cast<std::uint64_t>(d),
                 "{}: tensor '{}' is implausibly large", origin, name);
        count *= static_cast<std::uint64_t>(d);
      }
      const auto offsets = e.at("data_offsets").get<std::vector<std::uint64_t>>();
      GS_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size,
               "{}: tensor '{}' has data_offsets outside the {} data bytes", origin, name, data_size);
      GS_CHECK(offsets[1] - offsets[0] == count * dtype_size(dtype),
               "{}: tensor '{}' of shape [{}] needs {} bytes but its data_offsets span {}", origin, name, dims.size(),
               count * dtype_size(dtype), offsets[1] - offsets[0]);
      Tensor t = Tensor::empty(Shape::of(dims.data(), static_cast<int>(dims.size())), dtype);
      if (count) std::memcpy(t.raw(), data + offsets[0], offsets[1] - offsets[0]);
      out.tensors.emplace_back(name, t);
      spans.emplace_back(offsets[0], offsets[1]);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed header entry ({})", origin, e.what());
  }
  // The format requires the buffers to tile the data exactly: no overlap, no holes.
  std::sort(spans.begin(), spans.end());
  std::uint64_t end = 0;
  for (auto [b, e] : spans) {
    GS_CHECK(b == end, "{}: tensor data overlap or leave a hole at byte {}", origin, std::min(b, end));
    end = e;
  }
  GS_CHECK(end == data_size, "{}: {} data bytes follow the header but the tensors cover {}", origin, data_size, end);
  return out;
}

Safetensors load_safetensors(const std::filesystem::path& path) {
  auto bytes = read_file(path);
  return parse_safetensors(bytes.data(), bytes.size(), path.string());
}

}  // namespace gs::io
