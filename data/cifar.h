#pragma once
// CIFAR-10 and CIFAR-100 binary batches (Krizhevsky, 2009): records of label byte(s) followed by
// 3072 pixel bytes, 32×32 per channel, red then green then blue. CIFAR-10 has one label byte;
// CIFAR-100 has a coarse (20 classes) and a fine (100 classes) byte, in that order.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gs::data {

struct CifarRecords {
  std::int64_t count = 0;
  std::vector<std::uint8_t> pixels;  // [count, 3, 32, 32]
  std::vector<std::int32_t> labels;  // [count]
};

enum class CifarLabel { cifar10, cifar100_coarse, cifar100_fine };

// `origin` names the bytes in errors; raises on a size that is not a whole number of records or
// a label outside the label's range.
CifarRecords parse_cifar(const std::vector<std::uint8_t>& bytes, const std::string& origin, CifarLabel label);
CifarRecords read_cifar(const std::vector<std::filesystem::path>& files, CifarLabel label);

}  // namespace gs::data
