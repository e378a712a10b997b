// safetensors: round trips, the layout the format prescribes, and damaged files.
#include <nlohmann/json.hpp>

#include <fstream>

#include "engine/io/files.h"
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "temp_dir.h"

using namespace gs;

namespace {
std::vector<std::uint8_t> bytes_of(const std::filesystem::path& p) { return io::read_file(p); }

std::vector<std::uint8_t> with_header(const std::string& header, std::size_t data_bytes) {
  std::vector<std::uint8_t> out(8 + header.size() + data_bytes, 0);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}
}  // namespace

TEST_SUITE("io") {
  TEST_CASE("safetensors round trip keeps names, order, dtypes, shapes, values and metadata") {
    test::TempDir dir;
    nn::NamedTensors tensors{{"layers.1.weight", test::random_tensor(Shape{3, 4}, 1, DType::f32)},
                             {"layers.1.bias", test::random_tensor(Shape{3}, 2, DType::f64)},
                             {"counts", Tensor::from(std::vector<std::int32_t>{7, -1}, Shape{2})},
                             {"scalar", Tensor::scalar(2.5, DType::f32)}};
    io::save_safetensors(dir / "a.safetensors", tensors, {{"step", "12"}});
    auto loaded = io::load_safetensors(dir / "a.safetensors");
    REQUIRE(loaded.tensors.size() == 4);
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      CHECK(loaded.tensors[i].first == tensors[i].first);
      CHECK(loaded.tensors[i].second.dtype() == tensors[i].second.dtype());
      CHECK(loaded.tensors[i].second.shape() == tensors[i].second.shape());
      CHECK(loaded.tensors[i].second.to_vector() == tensors[i].second.to_vector());
    }
    CHECK(loaded.metadata.at("step") == "12");
    CHECK(loaded.get("counts").to_int_vector() == std::vector<std::int32_t>{7, -1});
    CHECK_THROWS_WITH_AS(loaded.get("nope"), doctest::Contains("no tensor 'nope'"), Error);
    CHECK_FALSE(std::filesystem::exists(dir / "a.safetensors.tmp"));
  }

  TEST_CASE("the header follows the format: u64 length, JSON, 8-byte aligned data, offsets tiling the buffer") {
    test::TempDir dir;
    io::save_safetensors(dir / "b.safetensors",
                         {{"w", test::random_tensor(Shape{2, 3}, 3, DType::f32)}, {"b", test::random_tensor(Shape{3}, 4, DType::f64)}});
    auto bytes = bytes_of(dir / "b.safetensors");
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= std::uint64_t(bytes[i]) << (8 * i);
    CHECK((8 + n) % 8 == 0);
    auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    CHECK(header["w"]["dtype"] == "F32");
    CHECK(header["w"]["shape"] == nlohmann::json::array({2, 3}));
    CHECK(header["w"]["data_offsets"] == nlohmann::json::array({0, 24}));
    CHECK(header["b"]["dtype"] == "F64");
    CHECK(header["b"]["data_offsets"] == nlohmann::json::array({24, 48}));
    CHECK(bytes.size() == 8 + n + 48);
  }

  TEST_CASE("damaged safetensors are refused with the defect named") {
    auto refuses = [](const std::vector<std::uint8_t>& b, const char* what) {
      CHECK_THROWS_WITH_AS(io::parse_safetensors(b.data(), b.size(), "x.safetensors"), doctest::Contains(what), Error);
    };
    refuses({1, 2, 3}, "too short");
    refuses(with_header("{", 0), "not valid JSON");
    std::vector<std::uint8_t> huge(16, 0);
    huge[6] = 1;
    refuses(huge, "exceeds the file");
    refuses(with_header(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", 2), "dtype F16");
    refuses(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "needs 8 bytes");
    refuses(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", 4), "outside the 4 data bytes");
    refuses(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
            "overlap");
    refuses(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), "cover 4");
    refuses(with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "impossible dimension");
    refuses(with_header(R"({"a":{"dtype":"F32"}})", 0), "needs dtype, shape and data_offsets");
    refuses(with_header(R"({"a":{"dtype":"F32","shape":"x","data_offsets":[0,4]}})", 4), "malformed header entry");
  }
}
