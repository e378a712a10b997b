#pragma once
// safetensors checkpoints (the Hugging Face format): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw
// little-endian data. Names and layouts are those of the PyTorch state_dict, so
// `model.load_state_dict(safetensors.torch.load_file(path))` reads a grokscope checkpoint.
#include <filesystem>
#include <map>
#include <string>

#include "engine/nn/module.h"

namespace gs::io {

struct Safetensors {
  nn::NamedTensors tensors;  // in file order
  std::map<std::string, std::string> metadata;
  Tensor get(const std::string& name) const;  // raises naming the missing key
};

// Writes atomically; tensors are copied to the host as needed.
void save_safetensors(const std::filesystem::path& path, const nn::NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
Safetensors load_safetensors(const std::filesystem::path& path);
// The parser alone, on bytes in memory; `origin` names them in errors (the fuzz target uses it).
Safetensors parse_safetensors(const std::uint8_t* bytes, std::size_t size, const std::string& origin);

}  // namespace gs::io
