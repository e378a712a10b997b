#include "experiments/probe_csv.h"

#include "engine/error.h"
#include "engine/io/files.h"

namespace gs::experiments {

namespace {
// The step in a row's first column; -1 for a torn line.
std::int64_t row_step(const std::string& line) {
  const auto comma = line.find(',');
  if (comma == std::string::npos || comma == 0) return -1;
  try {
    return std::stoll(line.substr(0, comma));
  } catch (const std::exception&) {
    return -1;
  }
}
}  // namespace

std::ofstream open_probe_csv(const std::filesystem::path& file, const std::string& header, std::int64_t step) {
  std::string kept = header + "\n";
  if (std::filesystem::exists(file)) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      const std::int64_t s = row_step(line);
      if (s >= 0 && s < step) kept += line + "\n";
    }
  }
  io::write_file_atomically(file, kept);
  std::ofstream out(file, std::ios::app);
  GS_CHECK(out.good(), "{}: cannot append", file.string());
  return out;
}

void flush_checked(std::ofstream& out, const std::filesystem::path& file) {
  out.flush();
  GS_CHECK(out.good(), "{}: writing its rows failed (disk full?)", file.string());
}

std::vector<std::int64_t> logged_steps(const std::filesystem::path& file) {
  std::vector<std::int64_t> steps;
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const std::int64_t s = row_step(line);
    if (s >= 0 && (steps.empty() || steps.back() < s)) steps.push_back(s);
  }
  return steps;
}

}  // namespace gs::experiments
