// libFuzzer target for the readers that take files from outside: IDX, CIFAR, safetensors and .npy.
// The first byte picks the reader; the rest is the file. A gs::Error is the expected answer to
// a bad file; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/cifar.h"
#include "data/idx.h"
#include "engine/error.h"
#include "engine/io/npy.h"
#include "engine/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::vector<std::uint8_t> bytes(data + 1, data + size);
  try {
    switch (data[0] % 5) {
      case 0: gs::data::parse_idx(bytes, "fuzz.idx"); break;
      case 1: gs::data::parse_cifar(bytes, "fuzz.bin", gs::data::CifarLabel::cifar10); break;
      case 2: gs::data::parse_cifar(bytes, "fuzz.bin", gs::data::CifarLabel::cifar100_fine); break;
      case 3: gs::io::parse_safetensors(bytes.data(), bytes.size(), "fuzz.safetensors"); break;
      case 4: gs::io::parse_npy(bytes.data(), bytes.size(), "fuzz.npy"); break;
    }
  } catch (const gs::Error&) {
  }
  return 0;
}
