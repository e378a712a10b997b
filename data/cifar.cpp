#include "data/cifar.h"

#include "engine/error.h"
#include "engine/io/files.h"

namespace gs::data {

namespace {
constexpr std::size_t pixels_per_image = 3 * 32 * 32;
}

CifarRecords parse_cifar(const std::vector<std::uint8_t>& bytes, const std::string& origin, CifarLabel label) {
  const std::size_t label_bytes = label == CifarLabel::cifar10 ? 1 : 2;
  const std::size_t record = label_bytes + pixels_per_image;
  GS_CHECK(!bytes.empty() && bytes.size() % record == 0,
           "{}: {} bytes is not a whole number of {}-byte {} records; the file is truncated or not a {} binary batch", origin,
           bytes.size(), record, label == CifarLabel::cifar10 ? "CIFAR-10" : "CIFAR-100",
           label == CifarLabel::cifar10 ? "CIFAR-10" : "CIFAR-100");
  const int classes = label == CifarLabel::cifar10 ? 10 : label == CifarLabel::cifar100_coarse ? 20 : 100;
  const std::size_t which = label == CifarLabel::cifar100_fine ? 1 : 0;
  CifarRecords out;
  out.count = static_cast<std::int64_t>(bytes.size() / record);
  out.pixels.reserve(static_cast<std::size_t>(out.count) * pixels_per_image);
  for (std::int64_t i = 0; i < out.count; ++i) {
    const std::uint8_t* r = bytes.data() + static_cast<std::size_t>(i) * record;
    GS_CHECK(r[which] < classes, "{}: record {} has label {}, outside the {} classes; the file is corrupt", origin, i,
             int(r[which]), classes);
    out.labels.push_back(r[which]);
    out.pixels.insert(out.pixels.end(), r + label_bytes, r + record);
  }
  return out;
}

CifarRecords read_cifar(const std::vector<std::filesystem::path>& files, CifarLabel label) {
  CifarRecords all;
  for (const auto& f : files) {
    GS_CHECK(std::filesystem::exists(f), "{}: no such file; put the CIFAR binary batches in that folder (data.path)",
             f.string());
    auto part = parse_cifar(io::read_file(f), f.string(), label);
    all.count += part.count;
    all.pixels.insert(all.pixels.end(), part.pixels.begin(), part.pixels.end());
    all.labels.insert(all.labels.end(), part.labels.begin(), part.labels.end());
  }
  return all;
}

}  // namespace gs::data
