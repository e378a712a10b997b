// Files: safetensors round trips, the layout the format prescribes, and damaged files; .npy; locks.
#include <nlohmann/json.hpp>

#include <unistd.h>

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
    // 2^39 · 2^39 elements wrap around 2^64 to 0, which the (empty) data would then match.
    refuses(with_header(R"({"a":{"dtype":"F32","shape":[549755813888,549755813888],"data_offsets":[0,0]}})", 0),
            "implausibly large");
  }
}

#include "engine/io/npy.h"

TEST_SUITE("io") {
  TEST_CASE(".npy round trip, and NumPy reads what we write and writes what we read") {
    test::TempDir dir;
    Tensor a = test::random_tensor(Shape{2, 3}, 5, DType::f32), b = test::random_tensor(Shape{4}, 6, DType::f64);
    Tensor c = Tensor::from(std::vector<std::int32_t>{3, -4, 5, 6, 7, 8}, Shape{1, 2, 3});
    for (auto [name, t] : {std::pair<const char*, Tensor>{"a.npy", a}, {"b.npy", b}, {"c.npy", c}}) {
      io::save_npy(dir / name, t);
      Tensor back = io::load_npy(dir / name);
      CHECK(back.shape() == t.shape());
      CHECK(back.dtype() == t.dtype());
      CHECK(back.to_vector() == t.to_vector());
      std::ifstream f(dir / name, std::ios::binary);
      std::string head(10, '\0');
      f.read(head.data(), 10);
      const std::size_t header_len = static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8);
      CHECK((10 + header_len) % 64 == 0);  // the format's alignment
    }
    if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
      MESSAGE("numpy is not installed for /usr/bin/python3: the cross-check with NumPy is skipped");
      return;
    }
    const std::string script = "import numpy as np, sys; d = sys.argv[1]; a = np.load(d + '/a.npy'); b = np.load(d + '/b.npy'); "
                               "c = np.load(d + '/c.npy'); assert a.dtype == np.float32 and a.shape == (2, 3); "
                               "assert b.dtype == np.float64 and b.shape == (4,); assert c.dtype == np.int32 and c.shape == (1, 2, 3); "
                               "print(repr(float(a.astype(np.float64).sum())), repr(float(b.sum())), int(c.sum())); "
                               "np.save(d + '/from_numpy.npy', np.arange(12, dtype=np.float64).reshape(3, 4) / 8)";
    const std::string cmd = "/usr/bin/python3 -c \"" + script + "\" " + dir.path().string() + " > " + (dir / "out.txt").string();
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream out(dir / "out.txt");
    double sa = 0, sb = 0;
    long sc = 0;
    out >> sa >> sb >> sc;
    double want_a = 0, want_b = 0;
    for (double v : a.to_vector()) want_a += v;
    for (double v : b.to_vector()) want_b += v;
    CHECK(sa == doctest::Approx(want_a).epsilon(1e-12));
    CHECK(sb == doctest::Approx(want_b).epsilon(1e-12));
    CHECK(sc == 25);
    Tensor from_numpy = io::load_npy(dir / "from_numpy.npy");
    CHECK(from_numpy.shape() == Shape{3, 4});
    CHECK(from_numpy.to_vector()[5] == 5.0 / 8);
  }

  TEST_CASE("damaged or unsupported .npy files are refused by name") {
    test::TempDir dir;
    io::save_npy(dir / "ok.npy", test::random_tensor(Shape{3}, 7, DType::f32));
    auto bytes = io::read_file(dir / "ok.npy");
    auto refuses = [&](std::vector<std::uint8_t> b, const char* what) {
      io::write_file_atomically(dir / "bad.npy", b.data(), b.size());
      CHECK_THROWS_WITH_AS(io::load_npy(dir / "bad.npy"), doctest::Contains(what), Error);
    };
    refuses(std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 1), "promises 12 data bytes but the file holds 11");
    auto wrong = bytes;
    wrong[0] = 'X';
    refuses(wrong, "bad magic");
    std::string text(bytes.begin(), bytes.end());
    text.replace(text.find("<f4"), 3, "<f2");
    refuses(std::vector<std::uint8_t>(text.begin(), text.end()), "dtype '<f2' is not supported");
    // Shapes: what numpy never writes, sizes past int64, and sizes whose product wraps around 2^64
    // (to 0, which an empty data part would match).
    auto with_shape = [](const std::string& shape, const std::string& descr) {
      std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
      header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
      header += '\n';
      const bool v2 = header.size() > 0xffff;  // format 2.0: a 4-byte header length
      std::string file(v2 ? "\x93NUMPY\x02\x00" : "\x93NUMPY\x01\x00", 8);
      for (int b = 0; b < (v2 ? 4 : 2); ++b) file += static_cast<char>((header.size() >> (8 * b)) & 0xff);
      file += header;
      return std::vector<std::uint8_t>(file.begin(), file.end());
    };
    refuses(with_shape("-3, 4", "<f4"), "the .npy shape (-3, 4) is not a tuple of array sizes");
    refuses(with_shape("3, x", "<f4"), "is not a tuple of array sizes");
    refuses(with_shape("3,, 4", "<f4"), "is not a tuple of array sizes");
    refuses(with_shape("99999999999999999999999, 3", "<f4"), "implausibly large");
    refuses(with_shape("4294967296, 4294967296", "<f4"), "implausibly large");
    refuses(with_shape("1152921504606846976, 784", "<f4"), "implausibly large");
    // Long headers: refused before they are read (std::regex once overflowed the stack on 100 kB);
    // a long but valid one, padded as numpy pads, loads.
    refuses(with_shape("2, 3" + std::string(100000, ' '), "<f4"), "its .npy header is 100");
    {
      auto padded = with_shape("1,", "<i4");
      padded.insert(padded.end() - 1, 8000, ' ');  // before the final newline
      const std::size_t header = padded.size() - 10;
      padded[8] = static_cast<std::uint8_t>(header & 0xff), padded[9] = static_cast<std::uint8_t>(header >> 8);
      padded.resize(padded.size() + 4, 0);
      CHECK(io::parse_npy(padded.data(), padded.size(), "padded.npy").shape() == Shape{1});
    }
    // What numpy does write still loads: a scalar, a 1-tuple, and no space after the comma.
    for (const auto& [shape, rank] : {std::pair<std::string, int>{"", 0}, {"0,", 1}, {"2,1", 2}}) {
      CAPTURE(shape);
      auto ok = with_shape(shape, "<i4");
      const std::size_t values = rank == 2 ? 2 : rank == 0 ? 1 : 0;
      ok.resize(ok.size() + 4 * values, 0);
      CHECK(io::parse_npy(ok.data(), ok.size(), "ok.npy").rank() == rank);
    }
  }
}

TEST_SUITE("io") {
  // flock locks belong to an open file: a second lock of the same file, even from this process,
  // is refused while the first is held, and granted once it is gone.
  TEST_CASE("a file lock is refused while another holder has it, naming its pid and the fix") {
    test::TempDir dir;
    const auto path = dir / "run.lock";
    {
      const io::FileLock first(path, "wait");
      const std::string said = path.string() + ": another process (pid " + std::to_string(::getpid()) +
                               ") is using this directory; wait for it";
      CHECK_THROWS_WITH_AS(io::FileLock(path, "wait for it"), doctest::Contains(said.c_str()), Error);
    }
    CHECK_NOTHROW(io::FileLock(path, "wait"));
    CHECK_NOTHROW(io::FileLock(path, "again, after the one before was released"));
    CHECK_THROWS_WITH_AS(io::FileLock(dir / "no" / "such" / "run.lock", "choose another --out"),
                         doctest::Contains("cannot open this lock file (No such file or directory); choose another --out"), Error);
  }
}
