// IDX reading (plain, gzip, EMNIST's transposed layout, every kind of damage), subsets and the
// batch iterator's DataLoader semantics, on small files the tests write themselves.
#include <zlib.h>

#include <fstream>
#include <map>
#include <set>

#include "data/dataset.h"
#include "data/idx.h"
#include "helpers.h"
#include "temp_dir.h"

using namespace gs;
using namespace gs::data;

namespace {

// n images of h×w with pixel (i, r, c) = (i·h·w + r·w + c) mod 251, labels i mod classes.
IdxArray images_array(std::int64_t n, std::int64_t h, std::int64_t w) {
  IdxArray a{{n, h, w}, {}};
  for (std::int64_t i = 0; i < n * h * w; ++i) a.values.push_back(static_cast<std::uint8_t>(i % 251));
  return a;
}
IdxArray labels_array(std::int64_t n, int classes) {
  IdxArray a{{n}, {}};
  for (std::int64_t i = 0; i < n; ++i) a.values.push_back(static_cast<std::uint8_t>(i % classes));
  return a;
}

void gzip_file(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::ifstream in(from, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  gzFile f = gzopen(to.c_str(), "wb");
  REQUIRE(f != nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("IDX round trip, plain and gzip, with unit and standard normalization") {
    test::TempDir dir;
    write_idx(dir / "img", images_array(6, 3, 4));
    write_idx(dir / "lab", labels_array(6, 10));
    gzip_file(dir / "img", dir / "img.gz");
    for (const char* name : {"img", "img.gz"}) {
      Dataset d = load_idx("tiny", {dir / name, dir / "lab", 10, false, 0.5, 0.25}, Normalization::unit);
      CHECK(d.images.shape() == Shape{6, 1, 3, 4});
      CHECK(d.labels.to_int_vector() == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5});
      auto x = d.images.to_vector();
      CHECK(x[0] == 0.0);
      CHECK(x[13] == doctest::Approx(13.0 / 255));
      Dataset s = load_idx("tiny", {dir / name, dir / "lab", 10, false, 0.5, 0.25}, Normalization::standard);
      CHECK(s.images.to_vector()[13] == doctest::Approx((13.0 / 255 - 0.5) / 0.25).epsilon(1e-6));
    }
  }

  TEST_CASE("EMNIST's transposed images come out upright") {
    test::TempDir dir;
    write_idx(dir / "img", images_array(2, 3, 3));
    write_idx(dir / "lab", labels_array(2, 10));
    Dataset d = load_idx("t", {dir / "img", dir / "lab", 10, true}, Normalization::unit);
    auto x = d.images.to_vector();
    // Stored value at (r, c) = r·3 + c; upright pixel (r, c) is the stored (c, r).
    CHECK(x[0 * 3 + 1] * 255 == doctest::Approx(3.0));
    CHECK(x[1 * 3 + 0] * 255 == doctest::Approx(1.0));
    CHECK(x[9 + 2 * 3 + 1] * 255 == doctest::Approx(9 + 1 * 3 + 2));
  }

  TEST_CASE("damaged IDX files give errors naming the file and the defect") {
    test::TempDir dir;
    write_idx(dir / "img", images_array(4, 2, 2));
    const std::string good = file_bytes(dir / "img");
    auto reads_as = [&](const std::string& bytes, const char* expected) {
      write_bytes(dir / "bad", bytes);
      CHECK_THROWS_WITH_AS(read_idx(dir / "bad"), doctest::Contains(expected), Error);
    };
    reads_as(std::string("\x01\x00\x08\x03", 4) + good.substr(4), "not an IDX file");
    reads_as(good.substr(0, 2) + "\x0d" + good.substr(3), "element type 0x0d");
    reads_as(good.substr(0, good.size() - 3), "a short read");
    reads_as(good + "xyz", "trailing garbage");
    reads_as(good.substr(0, 9), "truncated IDX header");
    reads_as("", "too short");
    CHECK_THROWS_WITH_AS(read_idx(dir / "missing"), doctest::Contains("no such file"), Error);
    gzip_file(dir / "img", dir / "img.gz");
    const std::string gz = file_bytes(dir / "img.gz");
    write_bytes(dir / "cut.gz", gz.substr(0, gz.size() / 2));
    CHECK_THROWS_AS(read_idx(dir / "cut.gz"), Error);
  }

  TEST_CASE("labels out of range and mismatched counts are refused") {
    test::TempDir dir;
    write_idx(dir / "img", images_array(12, 2, 2));
    write_idx(dir / "lab", labels_array(12, 12));  // labels 0..11: 10 and 11 are out of range
    write_idx(dir / "short", labels_array(3, 10));
    CHECK_THROWS_WITH_AS(load_idx("t", {dir / "img", dir / "lab", 10}, Normalization::unit),
                         doctest::Contains("label 10 at index"), Error);
    CHECK_THROWS_WITH_AS(load_idx("t", {dir / "img", dir / "short", 10}, Normalization::unit),
                         doctest::Contains("holds 12 images but"), Error);
  }

  TEST_CASE("named datasets find plain or .gz files and say what is missing") {
    test::TempDir dir;
    write_idx(dir / "train-images-idx3-ubyte", images_array(8, 2, 2));
    write_idx(dir / "lab", labels_array(8, 10));
    gzip_file(dir / "lab", dir / "train-labels-idx1-ubyte.gz");
    Dataset d = load_named("mnist", dir.path(), Split::train, Normalization::unit);
    CHECK(d.size() == 8);
    CHECK(d.classes == 10);
    CHECK_THROWS_WITH_AS(load_named("mnist", dir.path(), Split::test, Normalization::unit),
                         doctest::Contains("t10k-images-idx3-ubyte"), Error);
    CHECK_THROWS_WITH_AS(load_named("mnist", dir.path(), Split::test, Normalization::unit),
                         doctest::Contains("run data/fetch.sh"), Error);
    // EMNIST cannot be fetched: the message says where to get it instead of pointing at fetch.sh.
    CHECK_THROWS_WITH_AS(load_named("emnist-balanced", dir.path(), Split::train, Normalization::unit),
                         doctest::Contains("EMNIST is not fetched by data/fetch.sh"), Error);
    CHECK_THROWS_WITH_AS(load_named("cifar", dir.path(), Split::test, Normalization::unit), doctest::Contains("unknown dataset"),
                         Error);
  }

  TEST_CASE("subsets: first n, seeded random, class-balanced") {
    test::TempDir dir;
    write_idx(dir / "img", images_array(40, 2, 2));
    write_idx(dir / "lab", labels_array(40, 4));
    Dataset d = load_idx("t", {dir / "img", dir / "lab", 4}, Normalization::unit);
    CHECK(first_n(d, 3) == std::vector<std::int64_t>{0, 1, 2});
    CHECK_THROWS_WITH_AS(first_n(d, 41), doctest::Contains("has 40"), Error);
    Generator g1(1, Stream::data), g2(1, Stream::data);
    CHECK(random_subset(d, 10, g1) == random_subset(d, 10, g2));
    Generator g3(2, Stream::probe);
    auto rows = balanced_subset(d, 10, g3);
    std::map<int, int> per_class;
    std::set<std::int64_t> unique(rows.begin(), rows.end());
    for (auto r : rows) ++per_class[d.labels.data<std::int32_t>()[r]];
    CHECK(unique.size() == 10);
    CHECK(per_class == std::map<int, int>{{0, 3}, {1, 3}, {2, 2}, {3, 2}});
    Dataset s = select(d, {5, 2});
    CHECK(s.labels.to_int_vector() == std::vector<std::int32_t>{1, 2});
    CHECK(s.images.rows(0, 1).to_vector() == d.images.rows(5, 6).to_vector());
  }

  TEST_CASE("batches: reshuffled each epoch, partial last batch unless drop_last, resumable") {
    test::TempDir dir;
    write_idx(dir / "img", images_array(10, 1, 1));
    write_idx(dir / "lab", labels_array(10, 10));
    Dataset d = load_idx("t", {dir / "img", dir / "lab", 10}, Normalization::unit);
    Batches keep(d, 4, false, Generator(3, Stream::shuffle));
    std::vector<std::int64_t> sizes;
    std::vector<std::vector<std::int32_t>> epochs(2);
    for (int i = 0; i < 6; ++i) {
      Batch b = keep.next();
      sizes.push_back(b.labels.size(0));
      for (auto v : b.labels.to_int_vector()) epochs[b.epoch].push_back(v);
    }
    CHECK(sizes == std::vector<std::int64_t>{4, 4, 2, 4, 4, 2});
    for (auto& e : epochs) CHECK(std::set<std::int32_t>(e.begin(), e.end()).size() == 10);  // each epoch a permutation
    CHECK(epochs[0] != epochs[1]);
    CHECK(keep.batches_per_epoch() == 3);

    Batches drop(d, 4, true, Generator(3, Stream::shuffle));
    CHECK(drop.next().labels.size(0) == 4);
    CHECK(drop.next().labels.size(0) == 4);
    Batch third = drop.next();
    CHECK(third.epoch == 1);
    CHECK(third.labels.size(0) == 4);

    for (int taken : {3, 4}) {  // at an epoch's end and inside one
      CAPTURE(taken);
      Batches a(d, 4, false, Generator(5, Stream::shuffle));
      for (int i = 0; i < taken; ++i) a.next();
      Batches b(d, 4, false, Generator(5, Stream::shuffle));
      b.restore(a.state());
      for (int i = 0; i < 5; ++i) CHECK(a.next().labels.to_int_vector() == b.next().labels.to_int_vector());
    }

    // The rows alone (what a GPU run uploads) follow the same order, epochs and state.
    Batches whole(d, 4, false, Generator(7, Stream::shuffle)), rows_only(d, 4, false, Generator(7, Stream::shuffle));
    for (int i = 0; i < 7; ++i) {
      CAPTURE(i);
      const Batch b = whole.next();
      const BatchRows r = rows_only.next_rows();
      CHECK(r.epoch == b.epoch);
      const Dataset picked = select(d, r.rows);
      CHECK(picked.labels.to_int_vector() == b.labels.to_int_vector());
      CHECK(picked.images.to_vector() == b.images.to_vector());
      CHECK(rows_only.state().position == whole.state().position);
    }
  }
}

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

TEST_SUITE("data") {
  TEST_CASE("CIFAR-10 and CIFAR-100 binary batches") {
    test::TempDir dir;
    auto record = [](std::vector<std::string>& out, std::vector<std::uint8_t> labels, std::uint8_t fill) {
      std::string r(labels.begin(), labels.end());
      for (int i = 0; i < 3072; ++i) r.push_back(static_cast<char>((fill + i) % 256));
      out.push_back(r);
    };
    std::vector<std::string> ten, hundred;
    record(ten, {3}, 0);
    record(ten, {9}, 7);
    record(hundred, {4, 88}, 1);
    write_bytes(dir / "test_batch.bin", ten[0] + ten[1]);
    write_bytes(dir / "test.bin", hundred[0]);
    Dataset c10 = load_named("cifar10", dir.path(), Split::test, Normalization::unit);
    CHECK(c10.images.shape() == Shape{2, 3, 32, 32});
    CHECK(c10.labels.to_int_vector() == std::vector<std::int32_t>{3, 9});
    CHECK(c10.images.to_vector()[1024 + 5] == doctest::Approx((1024 + 5) % 256 / 255.0));  // green plane
    CHECK(c10.images.to_vector()[3072] == doctest::Approx(7 / 255.0));
    Dataset c100 = load_named("cifar100", dir.path(), Split::test, Normalization::unit);
    CHECK(c100.labels.to_int_vector() == std::vector<std::int32_t>{88});  // the fine label
    CHECK(c100.classes == 100);
    write_bytes(dir / "test_batch.bin", ten[0] + ten[1].substr(0, 100));
    CHECK_THROWS_WITH_AS(load_named("cifar10", dir.path(), Split::test, Normalization::unit),
                         doctest::Contains("not a whole number of 3073-byte CIFAR-10 records"), Error);
    std::string bad = ten[0];
    bad[0] = 12;
    write_bytes(dir / "test_batch.bin", bad);
    CHECK_THROWS_WITH_AS(load_named("cifar10", dir.path(), Split::test, Normalization::unit),
                         doctest::Contains("record 0 has label 12"), Error);
    CHECK_THROWS_WITH_AS(load_named("cifar10", dir.path(), Split::train, Normalization::unit),
                         doctest::Contains("data_batch_1.bin: no such file"), Error);
  }

  TEST_CASE("image folders: classes from sorted subfolder names, PNG decoding, damage refused") {
    test::TempDir dir;
    auto png = [&](const std::string& rel, int w, int h, std::uint8_t v) {
      std::filesystem::create_directories((dir / rel).parent_path());
      std::vector<std::uint8_t> px(static_cast<std::size_t>(w * h), v);
      REQUIRE(stbi_write_png((dir / rel).c_str(), w, h, 1, px.data(), w) != 0);
    };
    png("train/cat/a.png", 5, 4, 10);
    png("train/cat/b.png", 5, 4, 20);
    png("train/ant/c.png", 5, 4, 30);
    png("test/ant/d.png", 5, 4, 40);
    png("test/cat/e.png", 5, 4, 50);
    Dataset train = load_named("folder", dir.path(), Split::train, Normalization::unit);
    CHECK(train.classes == 2);
    CHECK(train.images.shape() == Shape{3, 1, 4, 5});
    CHECK(train.labels.to_int_vector() == std::vector<std::int32_t>{0, 1, 1});  // ant, then cat
    CHECK(train.images.to_vector()[0] == doctest::Approx(30 / 255.0));
    Dataset test = load_named("folder", dir.path(), Split::test, Normalization::standard);
    CHECK(test.size() == 2);
    png("train/cat/big.png", 6, 4, 0);
    CHECK_THROWS_WITH_AS(load_named("folder", dir.path(), Split::train, Normalization::unit), doctest::Contains("share one size"),
                         Error);
    std::filesystem::remove(dir / "train/cat/big.png");
    write_bytes(dir / "train/cat/broken.png", "\x89PNG\r\n\x1a\nnot really");
    CHECK_THROWS_WITH_AS(load_named("folder", dir.path(), Split::train, Normalization::unit), doctest::Contains("cannot decode"),
                         Error);
    std::filesystem::remove(dir / "train/cat/broken.png");
    png("test/dog/f.png", 5, 4, 60);
    CHECK_THROWS_WITH_AS(load_named("folder", dir.path(), Split::test, Normalization::unit),
                         doctest::Contains("different class subfolders"), Error);
  }
}
