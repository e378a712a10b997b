#pragma once
// NumPy .npy files, format version 1.0: the magic "\x93NUMPY", version bytes, a little-endian u16
// header length, a Python dict literal {'descr', 'fortran_order', 'shape'} padded with spaces to
// a multiple of 64 bytes and ended by '\n', then the raw C-order data. numpy.load reads them.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "engine/tensor.h"

namespace gs::io {

void save_npy(const std::filesystem::path& path, const Tensor& t);  // atomically
// Reads '<f4', '<f8' and '<i4' arrays in C order, rank ≤ 4; anything else is refused by name.
Tensor load_npy(const std::filesystem::path& path);
// The same from the file's bytes; `origin` names the file in errors.
Tensor parse_npy(const std::uint8_t* bytes, std::size_t size, const std::string& origin);

}  // namespace gs::io
