#include "data/image_folder.h"

#include <algorithm>
#include <memory>

#include "engine/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>

namespace gs::data {

std::vector<std::string> class_folders(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  GS_CHECK(fs::is_directory(root), "{}: not a folder; an image folder holds one subfolder per class", root.string());
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  GS_CHECK(!names.empty(), "{}: no class subfolders", root.string());
  return names;
}

FolderImages read_image_folder(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  FolderImages out;
  out.class_names = class_folders(root);
  for (std::size_t c = 0; c < out.class_names.size(); ++c) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(root / out.class_names[c]))
      if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      int w = 0, h = 0, channels = 0;
      // The first image fixes the channel count; later ones are converted to it.
      std::unique_ptr<stbi_uc, void (*)(void*)> data(
          stbi_load(f.c_str(), &w, &h, &channels, static_cast<int>(out.channels)), stbi_image_free);
      GS_CHECK(data != nullptr, "{}: cannot decode this image ({}); remove it or replace it with a PNG or JPEG", f.string(),
               stbi_failure_reason());
      if (out.count == 0) {
        out.channels = channels;
        out.height = h;
        out.width = w;
      }
      GS_CHECK(h == out.height && w == out.width, "{}: {}×{} pixels, but the folder's first image is {}×{}; all images must "
               "share one size", f.string(), w, h, out.width, out.height);
      const std::size_t plane = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
      const std::size_t base = out.pixels.size();
      out.pixels.resize(base + plane * static_cast<std::size_t>(out.channels));
      for (std::size_t p = 0; p < plane; ++p)  // interleaved HWC -> planar CHW
        for (std::int64_t ch = 0; ch < out.channels; ++ch)
          out.pixels[base + static_cast<std::size_t>(ch) * plane + p] = data.get()[p * static_cast<std::size_t>(out.channels) + ch];
      out.labels.push_back(static_cast<std::int32_t>(c));
      ++out.count;
    }
  }
  GS_CHECK(out.count > 0, "{}: the class subfolders hold no images", root.string());
  return out;
}

}  // namespace gs::data
