#pragma once
// Image folders: root/<class name>/<image files>, one subfolder per class, classes numbered in
// the sorted order of their names (as torchvision.datasets.ImageFolder). Images are decoded
// with stb_image (PNG, JPEG, BMP, ...) and must all share one size and channel count.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gs::data {

struct FolderImages {
  std::vector<std::string> class_names;
  std::int64_t count = 0, channels = 0, height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // [count, channels, height, width]
  std::vector<std::int32_t> labels;
};

FolderImages read_image_folder(const std::filesystem::path& root);
// The sorted class subfolder names of root.
std::vector<std::string> class_folders(const std::filesystem::path& root);

}  // namespace gs::data
